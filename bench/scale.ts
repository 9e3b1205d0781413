//! `npm run bench -- --scale`: does tierkv stay flat as a store grows? Not run in CI (minutes, and
//! a few hundred MB of disk per layout).
//!
//! The data is written straight into the SQLite files through `SqliteStore` in this process (its
//! group commit, synchronous=NORMAL while loading; not through the server), which is minutes
//! faster than a million calls over gRPC and leaves exactly the rows the server would have
//! written: the same schema, versions from the hybrid clock's format (ms << 20 | counter), the
//! clock row raised. Layouts, each in a file of its own:
//!   one-namespace   N keys in one namespace, plus a 1,000-key namespace beside them
//!   many-namespaces N keys over N/100 namespaces of 100 keys (10,000 namespaces for N = 1,000,000)
//!   small           the 1,000-key namespace alone
//!   empty           nothing
//! Then, against `tierkv serve` on those files:
//!   - ListPage latency (page of 1,000, one client, sequential calls): the first page and pages
//!     deep in the N-key namespace against the 1,000-key namespace (goal ≤ 2×); a 100-key
//!     namespace among the many against a first page of 100 from the 1,000-key namespace; and
//!     the time to walk the whole N-key namespace.
//!   - Start-up: spawn → "listening", and spawn → first Write acknowledged (it waits for the
//!     version clock's seeding), and RSS right after; per layout (goal: flat with key count).
//!   - Resync of the one-namespace file to an empty SQLite backup (`tierkv resync`'s RPC): keys/s.

import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TierkvAdminClient } from "../src/client/admin-client.js";
import { TierkvClient } from "../src/client/client.js";
import { SqliteStore } from "../src/store/sqlite.js";
import type { KeyRef, NamespaceRef } from "../src/store/types.js";
import { median } from "./report.js";
import { cpuSeconds, residentBytes } from "./proc-stats.js";
import { startProcess, stopProcess, tierkvListening, TIERKV_CLI } from "./targets.js";

export interface ScaleOptions {
  /** Keys per large layout (1,000,000 by default). */
  readonly keys: number;
  readonly out: string;
}

const BIG: NamespaceRef = { primaryNamespace: "scale", secondaryNamespace: "big" };
const SMALL: NamespaceRef = { primaryNamespace: "scale", secondaryNamespace: "small" };
const SMALL_KEYS = 1000;
const PER_NAMESPACE = 100;
const SAMPLES = 40;
const VALUE = randomBytes(100);

const log = (line: string): boolean => process.stderr.write(`${line}\n`);
const mib = (bytes: number): number => bytes / (1024 * 1024);

interface LatencySummary {
  readonly medianMs: number;
  readonly p90Ms: number;
  readonly samples: number;
}

function summarise(ms: number[]): LatencySummary {
  const sorted = [...ms].sort((a, b) => a - b);
  return { medianMs: median(sorted), p90Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))] ?? NaN, samples: sorted.length };
}

/** Writes `count` keys made by `ref(i)` through SqliteStore, `window` in flight; resolves with keys/s. */
async function load(path: string, parts: Array<{ count: number; ref: (i: number) => KeyRef }>): Promise<number> {
  const store = new SqliteStore(path, { synchronous: "NORMAL" });
  const started = performance.now();
  let written = 0;
  const base = BigInt(Date.now() - 60_000) << 20n;
  try {
    for (const part of parts) {
      const window = 4096;
      for (let start = 0; start < part.count; start += window) {
        const end = Math.min(part.count, start + window);
        const writes: Array<Promise<unknown>> = [];
        for (let i = start; i < end; i++) writes.push(store.write(part.ref(i), VALUE, { version: base + BigInt(written + i - start) }));
        await Promise.all(writes);
        written += end - start;
      }
    }
  } finally {
    await store.close();
  }
  return written / ((performance.now() - started) / 1000);
}

interface Started {
  readonly stop: () => Promise<void>;
  readonly address: string;
  readonly pid: number;
  readonly listeningMs: number;
  readonly firstWriteMs: number;
  readonly rssMiB: number;
  readonly anonymousMiB: number;
}

/** Starts `tierkv serve` and times it up to "listening" and to the first acknowledged Write. */
async function serve(args: string[]): Promise<Started> {
  const started = performance.now();
  const { child, address } = await startProcess(process.execPath, [TIERKV_CLI, "serve", "--listen", "127.0.0.1:0", ...args], (line) => tierkvListening(line));
  const listeningMs = performance.now() - started;
  const client = new TierkvClient({ address });
  try {
    await client.write({ primaryNamespace: "scale", secondaryNamespace: "probe", key: "first" }, VALUE);
  } finally {
    await client.close();
  }
  const firstWriteMs = performance.now() - started;
  const resident = residentBytes(child.pid!);
  return { stop: () => stopProcess(child), address, pid: child.pid!, listeningMs, firstWriteMs, rssMiB: mib(resident.total), anonymousMiB: mib(resident.anonymous) };
}

/** `samples` timed calls of `call`, after two untimed ones (connection, statement caches). */
async function timed(samples: number, call: () => Promise<unknown>): Promise<LatencySummary> {
  await call();
  await call();
  const ms: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await call();
    ms.push(performance.now() - started);
  }
  return summarise(ms);
}

export async function runScale(options: ScaleOptions): Promise<void> {
  const keys = options.keys;
  const namespaces = Math.max(1, Math.floor(keys / PER_NAMESPACE));
  const dir = mkdtempSync(join(tmpdir(), "tierkv-bench-scale-"));
  const file = (name: string): string => join(dir, `${name}.db`);
  const result: Record<string, unknown> = { keys, namespaces, startedAt: new Date().toISOString(), loadedWith: "SqliteStore in process (synchronous=NORMAL), not through the server" };
  try {
    // --- data ---------------------------------------------------------------------------------
    const pad = (i: number): string => String(i).padStart(7, "0");
    const smallPart = { count: SMALL_KEYS, ref: (i: number): KeyRef => ({ ...SMALL, key: `s${pad(i)}` }) };
    log(`scale: writing ${keys} keys in one namespace (+${SMALL_KEYS} beside them)…`);
    const oneRate = await load(file("one-namespace"), [{ count: keys, ref: (i) => ({ ...BIG, key: `k${pad(i)}` }) }, smallPart]);
    log(`scale: ${oneRate.toFixed(0)} keys/s; writing ${keys} keys over ${namespaces} namespaces…`);
    const manyRate = await load(file("many-namespaces"), [
      { count: namespaces * PER_NAMESPACE, ref: (i) => ({ primaryNamespace: "many", secondaryNamespace: `ns${pad(Math.floor(i / PER_NAMESPACE))}`, key: `k${i % PER_NAMESPACE}` }) },
    ]);
    await load(file("small"), [smallPart]);
    await load(file("empty"), []);
    result["load"] = { oneNamespaceKeysPerSecond: oneRate, manyNamespacesKeysPerSecond: manyRate };
    result["fileMiB"] = Object.fromEntries(["one-namespace", "many-namespaces", "small", "empty"].map((n) => [n, mib(statSync(file(n)).size)]));

    // --- start-up and RSS ------------------------------------------------------------------------
    const startup: Record<string, unknown> = {};
    for (const layout of ["empty", "small", "one-namespace", "many-namespaces"]) {
      const runs: Started[] = [];
      for (let i = 0; i < 3; i++) {
        const server = await serve(["--primary", `sqlite:${file(layout)}`]);
        await server.stop();
        runs.push(server);
      }
      startup[layout] = {
        listeningMs: median(runs.map((r) => r.listeningMs)),
        firstWriteMs: median(runs.map((r) => r.firstWriteMs)),
        rssMiB: median(runs.map((r) => r.rssMiB)),
        anonymousMiB: median(runs.map((r) => r.anonymousMiB)),
      };
      log(`scale: start-up ${layout}: ${JSON.stringify(startup[layout])}`);
    }
    result["startup"] = startup;

    // --- ListPage ------------------------------------------------------------------------------
    const listPage: Record<string, unknown> = {};
    {
      const server = await serve(["--primary", `sqlite:${file("one-namespace")}`]);
      const client = new TierkvClient({ address: server.address, timeoutMs: 120_000 });
      try {
        // Walk the whole big namespace once, timing every page and keeping tokens to revisit.
        const pageMs: number[] = [];
        const tokens: string[] = [""];
        let token = "";
        let listed = 0;
        const walkStarted = performance.now();
        do {
          const started = performance.now();
          const page = await client.listPage(BIG, { pageSize: 1000, pageToken: token });
          pageMs.push(performance.now() - started);
          listed += page.keys.length;
          token = page.nextPageToken;
          if (token !== "") tokens.push(token);
        } while (token !== "");
        const walkSeconds = (performance.now() - walkStarted) / 1000;
        const at = (fraction: number): string => tokens[Math.min(tokens.length - 1, Math.floor(fraction * (tokens.length - 1)))]!;
        const page = (ns: NamespaceRef, pageToken: string, pageSize = 1000) => () => client.listPage(ns, { pageSize, pageToken });
        const smallFirst = await timed(SAMPLES, page(SMALL, ""));
        const bigFirst = await timed(SAMPLES, page(BIG, ""));
        const bigMiddle = await timed(SAMPLES, page(BIG, at(0.5)));
        const bigDeep = await timed(SAMPLES, page(BIG, at(1)));
        const cpuBefore = cpuSeconds(server.pid);
        const readBig = await timed(SAMPLES * 5, () => client.read({ ...BIG, key: `k${pad(Math.floor(Math.random() * keys))}` }));
        const readCpuUs = ((cpuSeconds(server.pid) - cpuBefore) * 1e6) / (SAMPLES * 5 + 2);
        listPage["oneNamespace"] = {
          walk: { keys: listed, pages: pageMs.length, seconds: walkSeconds, pageMs: summarise(pageMs), firstPagesMs: pageMs.slice(0, 3), lastPagesMs: pageMs.slice(-3) },
          smallNamespaceFirstPage: smallFirst,
          bigNamespaceFirstPage: bigFirst,
          bigNamespaceMiddlePage: bigMiddle,
          bigNamespaceDeepestPage: bigDeep,
          ratioFirstToSmall: bigFirst.medianMs / smallFirst.medianMs,
          ratioDeepToSmall: bigDeep.medianMs / smallFirst.medianMs,
          pointRead: { ...readBig, serverCpuUsPerOp: readCpuUs },
        };
        log(`scale: ListPage one-namespace: ${JSON.stringify(listPage["oneNamespace"])}`);
      } finally {
        await client.close();
        await server.stop();
      }
    }
    {
      // The small layout on its own, to compare like with like (a 1,000-key file).
      const server = await serve(["--primary", `sqlite:${file("small")}`]);
      const client = new TierkvClient({ address: server.address });
      try {
        listPage["smallFile"] = {
          firstPage1000: await timed(SAMPLES, () => client.listPage(SMALL, { pageSize: 1000 })),
          firstPage100: await timed(SAMPLES, () => client.listPage(SMALL, { pageSize: 100 })),
        };
      } finally {
        await client.close();
        await server.stop();
      }
    }
    {
      const server = await serve(["--primary", `sqlite:${file("many-namespaces")}`]);
      const client = new TierkvClient({ address: server.address });
      try {
        const some = (): NamespaceRef => ({ primaryNamespace: "many", secondaryNamespace: `ns${pad(Math.floor(Math.random() * namespaces))}` });
        const manyPage = await timed(SAMPLES, async () => {
          const page = await client.listPage(some(), { pageSize: 1000 });
          if (page.keys.length !== PER_NAMESPACE) throw new Error(`a namespace of the many listed ${page.keys.length} keys, not ${PER_NAMESPACE}`);
        });
        const smallPage100 = (listPage["smallFile"] as { firstPage100: LatencySummary }).firstPage100;
        listPage["manyNamespaces"] = { namespacePage: manyPage, ratioToSmallFile100: manyPage.medianMs / smallPage100.medianMs };
        log(`scale: ListPage many-namespaces: ${JSON.stringify(listPage["manyNamespaces"])}`);
      } finally {
        await client.close();
        await server.stop();
      }
    }
    result["listPage"] = listPage;

    // --- resync to an empty SQLite backup --------------------------------------------------------
    {
      const server = await serve(["--primary", `sqlite:${file("one-namespace")}`, "--backup", `sqlite:${join(dir, "backup.db")}`]);
      const admin = new TierkvAdminClient({ address: server.address });
      try {
        const cpuBefore = cpuSeconds(server.pid);
        const started = performance.now();
        let last: { copied: bigint; primaryKeys: bigint; done: boolean } | undefined;
        let reported = started;
        for await (const progress of admin.resync()) {
          last = progress;
          if (performance.now() - reported > 10_000) {
            reported = performance.now();
            log(`scale: resync ${progress.primaryScanned}/${progress.primaryKeys}`);
          }
        }
        const seconds = (performance.now() - started) / 1000;
        const copied = Number(last?.copied ?? 0n);
        result["resync"] = {
          primaryKeys: Number(last?.primaryKeys ?? 0n),
          copied,
          seconds,
          keysPerSecond: copied / seconds,
          serverCpuUsPerKey: ((cpuSeconds(server.pid) - cpuBefore) * 1e6) / Math.max(1, copied),
          // After: total resident memory includes SQLite's memory maps of both files (file-backed).
          rssAfterMiB: mib(residentBytes(server.pid).total),
          anonymousAfterMiB: mib(residentBytes(server.pid).anonymous),
        };
        log(`scale: resync: ${JSON.stringify(result["resync"])}`);
      } finally {
        admin.close();
        await server.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(options.out, { recursive: true });
  const path = join(options.out, "scale.json");
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  log(`results: ${path}`);
}
