// Child process of the PostgreSQL quota tests: a second tierkv "instance" (its own process and
// pool, the built dist/) on the test's database. Prints "ready" once open; then reads one JSON job
// per stdin line, runs its mutations concurrently and prints their results as one JSON line:
//   { "kind": "write" | "remove" | "txn", "keys": [...], "size": n, "quota": {...} }
//   → ["applied" | "stale" | "<code>:<reason>", ...]  (one result for a txn)
import { createInterface } from "node:readline";
import { openPostgresStore } from "../../dist/src/store/postgres.js";

const [uri] = process.argv.slice(2);
const store = await openPostgresStore(uri);
const ref = (key) => ({ primaryNamespace: "quota", secondaryNamespace: "", key });
const failure = (error) => `${error.code}:${error.reason ?? ""}`;

process.stdout.write("ready\n");
for await (const line of createInterface({ input: process.stdin })) {
  const job = JSON.parse(line);
  const value = Buffer.alloc(job.size ?? 0, 120);
  let results;
  if (job.kind === "txn") {
    const operations = job.keys.map((key) => ({ ...ref(key), kind: "write", value }));
    results = [await store.txn({ checks: [], operations, quota: job.quota }).then((result) => (result.succeeded ? "applied" : "failed"), failure)];
  } else {
    results = await Promise.all(
      job.keys.map((key) =>
        (job.kind === "write" ? store.write(ref(key), value, { quota: job.quota }) : store.remove(ref(key))).catch(failure),
      ),
    );
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}
await store.close();
