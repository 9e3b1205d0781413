// No secret of a store URI in any output of `tierkv migrate` (dry run, unreachable target,
// non-empty target, progress and resume lines), its checkpoint file (name, content; 0600) or
// `tierkv serve`'s start-up error, for every shape of a PostgreSQL password; and PGPASSWORD and a
// passfile as the way to keep the password off the command line. A real PostgreSQL (embedded).

import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { freePort, usePostgres } from "../support/postgres.js";
import { runCli, type CliResult } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { expectSameData, runCliIn, seed, snapshot, spawnCli } from "./fixtures.js";

const postgres = usePostgres();
afterEach(removeTempDirs);

/** Every password below holds this marker; no output may show it. */
const MARKER = "S3cr3t";

interface Shape {
  readonly name: string;
  /** The role's password in the database (undefined: the URI cannot name a usable one). */
  readonly password?: string;
  /** The URI for `host:port/db`, with the secret in it. */
  uri(hostPortDb: string): string;
}

const SHAPES: readonly Shape[] = [
  { name: "a raw @ in the password", password: `pw@${MARKER}a`, uri: (at) => `postgres://r_a:pw@${MARKER}a@${at}` },
  { name: "percent-encoded / and % in the password", password: `p/w%${MARKER}b`, uri: (at) => `postgres://r_b:p%2Fw%25${MARKER}b@${at}` },
  // Not valid URIs (a raw / ends the authority, a raw % starts a bad escape): refused, still hidden.
  { name: "a raw / in the password", uri: (at) => `postgres://r_c:pw/${MARKER}c@${at}` },
  { name: "a raw % in the password", uri: (at) => `postgresql://r_d:pw%${MARKER}d@${at}` },
  { name: "a password= parameter", uri: (at) => `postgres://r_e@${at}?sslmode=disable&password=${MARKER}e` },
  { name: "an sslpassword= parameter", uri: (at) => `postgres://r_f@${at}?sslpassword=${MARKER}f` },
];

// One source for every test of the file (per-test directories are removed after each).
const sourceDir = mkdtempSync(join(tmpdir(), "tierkv-redact-src-"));
const source = join(sourceDir, "source.db");
let sourceData: Awaited<ReturnType<typeof snapshot>>;
afterAll(() => rmSync(sourceDir, { recursive: true, force: true }));

beforeAll(async () => {
  const store = new SqliteStore(source);
  await seed(store, 100);
  sourceData = await snapshot(store);
  await store.close();
  for (const [i, shape] of SHAPES.entries()) {
    if (shape.password === undefined) continue;
    const role = `r_${"abcdef"[i]}`;
    await postgres().admin(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD '${shape.password.replace(/'/g, "''")}'`);
  }
}, 120_000);

/** A fresh database: its admin URI and its `host:port/db`. */
async function database(): Promise<{ admin: string; at: string }> {
  const admin = await postgres().createDatabase();
  const url = new URL(admin);
  return { admin, at: `${url.host}${url.pathname}` };
}

function expectNoSecret(result: { stdout: Buffer | string; stderr: string }, what: string): void {
  expect(`${result.stdout.toString()}${result.stderr}`, what).not.toContain(MARKER);
}

describe.each(SHAPES)("tierkv migrate with $name", (shape) => {
  it("shows no secret in any output or checkpoint; the checkpoint is 0600", async () => {
    const cwd = tempDir("tierkv-redact-");
    const { admin, at } = await database();
    const to = shape.uri(at);
    const migrate = ["migrate", "--from", `sqlite:${source}`, "--to", to];

    const dry = await runCliIn([...migrate, "--dry-run"], cwd);
    expectNoSecret(dry, "--dry-run");
    if (shape.password !== undefined) expect(dry.stdout.toString()).toContain("target: empty\n");
    else expect(dry.code, dry.stderr).not.toBe(0);

    const port = await freePort();
    const unreachable = await runCliIn(["migrate", "--from", `sqlite:${source}`, "--to", shape.uri(at.replace(/:\d+\//, `:${port}/`))], cwd);
    expectNoSecret(unreachable, "unreachable");
    expect(unreachable.code).not.toBe(0);
    if (shape.password !== undefined) expect(unreachable.stderr).toMatch(/cannot be reached/);
    if (shape.name.includes("raw %")) expect(unreachable.stderr).toMatch(/write a literal % as %25/);

    const serve = await runCli(["serve", "--listen", "127.0.0.1:0", "--primary", to.replace(/:\d+\//, `:${port}/`)]);
    expectNoSecret(serve, "serve");
    expect(serve.code).not.toBe(0);

    if (shape.password === undefined) {
      expect(readdirSync(cwd)).toEqual([]);
      return;
    }
    // Killed while copying: the checkpoint stays, named by a hash, holding no secret, 0600.
    const first = spawnCli([...migrate, "--concurrency", "1", "--progress-interval", "20"], cwd);
    // At least one key copied (and so committed) before the kill: the target is then not empty.
    await first.waitForStderr(/^migrate: [1-9]\d*\/\d+ keys/);
    first.child.kill("SIGKILL");
    await first.exited;
    expectNoSecret({ stdout: first.stdout(), stderr: first.stderr() }, "progress");
    const [checkpoint, ...others] = readdirSync(cwd);
    expect(others).toEqual([]);
    expect(checkpoint).toMatch(/^tierkv-migrate-[0-9a-f]{16}\.migrate-checkpoint$/);
    expect(statSync(join(cwd, checkpoint!)).mode & 0o777).toBe(0o600);
    const content = readFileSync(join(cwd, checkpoint!), "utf8");
    expect(content).not.toContain(MARKER);
    expect(JSON.parse(content)).toMatchObject({ to: `postgres://${/^postgres:\/\/(r_\w)/.exec(to)![1]}@${at}` });

    // The partly copied target is not empty: refused from another directory (no checkpoint there).
    const refused = await runCliIn(migrate, tempDir("tierkv-redact-other-"));
    expectNoSecret(refused, "not empty");
    expect(refused.stderr).toMatch(/is not empty/);

    const resumed = await runCliIn(migrate, cwd);
    expectNoSecret(resumed, "resumed");
    expect(resumed.stderr).toMatch(/resuming the migration/);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(readdirSync(cwd)).toEqual([]);
    const copied = await openPostgresStore(admin);
    expectSameData(await snapshot(copied), sourceData);
    await copied.close();
  }, 120_000);
});

describe("a password off the command line", () => {
  async function migrateWith(env: NodeJS.ProcessEnv, dir: string): Promise<CliResult> {
    const { at } = await database();
    return runCli(["migrate", "--from", `sqlite:${source}`, "--to", `postgres://r_a@${at}`, "--checkpoint", join(dir, "cp")], undefined, env);
  }

  it("PGPASSWORD is used when the URI names no password", async () => {
    const dir = tempDir("tierkv-redact-");
    const result = await migrateWith({ PGPASSWORD: SHAPES[0]!.password }, dir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.toString()).toMatch(/^migrate done: copied 1201 keys/);
  }, 60_000);

  it("so is a passfile (PGPASSFILE or ~/.pgpass, 0600), with node-postgres's deprecation warning", async () => {
    const dir = tempDir("tierkv-redact-");
    const passfile = join(dir, "pgpass");
    writeFileSync(passfile, `*:*:*:r_a:${SHAPES[0]!.password!.replace(/[:\\]/g, "\\$&")}\n`);
    chmodSync(passfile, 0o600);
    // pg reads the passfile only when PGPASSWORD is not set at all (not even empty).
    const result = await migrateWith({ PGPASSWORD: undefined, PGPASSFILE: passfile }, dir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/DeprecationWarning: pgpass support is deprecated/);
  }, 60_000);
});
