//! The in-process better-sqlite3 ceiling: the same upserts and point reads tierkv's SQLite
//! backend makes (WAL, synchronous=FULL), with no RPC at all, one transaction per write and 64
//! writes per transaction (what group commit can reach).

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";

export interface SqliteCeiling {
  readonly case: string;
  readonly opsPerSecond: number;
}

const KEYS = 10_000;

export function measureSqliteCeiling(durationMs: number): SqliteCeiling[] {
  const dir = mkdtempSync(join(tmpdir(), "tierkv-bench-sqlite-"));
  const db = new Database(join(dir, "ceiling.db"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec(`CREATE TABLE kv (seq INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL UNIQUE, v BLOB NOT NULL, version INTEGER NOT NULL)`);
    const upsert = db.prepare(
      `INSERT INTO kv (k, v, version) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v, version = excluded.version`,
    );
    const read = db.prepare(`SELECT v, version FROM kv WHERE k = ?`);
    const time = (name: string, batch: number, operation: (i: number) => void): SqliteCeiling => {
      const run = batch > 1 ? db.transaction((start: number) => { for (let j = 0; j < batch; j++) operation(start + j); }) : undefined;
      const end = performance.now() + durationMs;
      let ops = 0;
      const started = performance.now();
      while (performance.now() < end) {
        if (run) run(ops);
        else operation(ops);
        ops += batch;
      }
      return { case: name, opsPerSecond: ops / ((performance.now() - started) / 1000) };
    };
    const results: SqliteCeiling[] = [];
    // 1 KiB last: the point reads below then find 1 KiB values, like the read workload.
    for (const [label, size] of [["64k", 64 * 1024], ["1k", 1024]] as const) {
      const value = randomBytes(size);
      const write = (i: number): void => void upsert.run(`k${i % KEYS}`, value, i + 1);
      results.push(time(`write ${label}, 1 per transaction`, 1, write));
      results.push(time(`write ${label}, 64 per transaction`, 64, write));
    }
    results.push(time("read 1k (point select)", 1, (i) => void read.get(`k${(i * 7919) % KEYS}`)));
    return results;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
