//! The servers under test, each started fresh as its own process(es) on loopback.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { TierkvClient } from "../src/client/client.js";
import type { DriverKind } from "./drivers.js";
import { waitUntilTailing } from "./follower-lag.js";
import { BARE_SCHEMA, type BenchPostgres } from "./postgres.js";
import { WORKLOADS, type WorkloadName } from "./workloads.js";

export const TARGETS = [
  "tierkv-sqlite",
  "tierkv-sqlite+sqlite-backup",
  "tierkv-sqlite+remote-backup",
  "tierkv-sqlite+100-watchers",
  "tierkv-sqlite+follower",
  "tierkv-vss",
  "tierkv-connect",
  "tierkv-postgres",
  "tierkv-postgres-x2",
  "pg-bare",
  "etcd",
  "grpc-ceiling",
  "grpc-ceiling-raw",
] as const;
export type TargetName = (typeof TARGETS)[number];

export interface TargetInfo {
  readonly kind: DriverKind;
  /** The workloads this target runs (the others say nothing new about it, or it cannot run them). */
  readonly workloads: readonly WorkloadName[];
  /** What it needs besides Node: an etcd binary, the embedded PostgreSQL, tierkv's --vss-listen. */
  readonly needs?: "etcd" | "postgres" | "vss";
  readonly description: string;
}

const WRITES: readonly WorkloadName[] = ["write-1k", "write-64k", "ldk-mix"];

export const TARGET_INFO: Record<TargetName, TargetInfo> = {
  "tierkv-sqlite": { kind: "tierkv", workloads: WORKLOADS, description: "tierkv, SQLite primary" },
  "tierkv-sqlite+sqlite-backup": { kind: "tierkv", workloads: WRITES, description: "tierkv, SQLite primary and SQLite backup" },
  "tierkv-sqlite+remote-backup": { kind: "tierkv", workloads: WRITES, description: "tierkv, SQLite primary, backup: a second tierkv (SQLite) over gRPC" },
  "tierkv-sqlite+100-watchers": {
    kind: "tierkv",
    workloads: ["write-1k"],
    description: "tierkv-sqlite with 100 idle Watch streams on the written store (prefix `idle`: every commit wakes them, none matches)",
  },
  "tierkv-sqlite+follower": {
    kind: "tierkv",
    workloads: ["write-1k"],
    description:
      "tierkv-sqlite (the leader, which takes the load) with one follower beside it (`serve --follow`, its own SQLite file, a replicate-role token); " +
      "server CPU counts both processes, peak RSS is the larger one's; the follower's lag is in its own section",
  },
  "tierkv-vss": {
    kind: "vss",
    workloads: ["write-1k", "write-64k", "read-1k", "txn-1k"],
    needs: "vss",
    description: "tierkv-sqlite through its VSS HTTP listener (putObjects/getObject; txn: a versioned putObjects)",
  },
  "tierkv-connect": {
    kind: "connect",
    workloads: ["write-1k", "write-64k", "read-1k"],
    needs: "vss",
    description: "tierkv-sqlite through KVStoreService over Connect (unary, binary protobuf, HTTP/1.1) on the same HTTP listener as VSS",
  },
  "tierkv-postgres": { kind: "tierkv", workloads: WORKLOADS, needs: "postgres", description: "tierkv, PostgreSQL primary (embedded server, fsync on)" },
  "tierkv-postgres-x2": {
    kind: "tierkv",
    workloads: ["write-1k", "read-1k", "txn-1k"],
    needs: "postgres",
    description: "two tierkv instances on one PostgreSQL database, the load's loops alternating between them",
  },
  "pg-bare": {
    kind: "pg",
    workloads: WORKLOADS,
    needs: "postgres",
    description: "PostgreSQL's own ceiling: bare `pg` statements (tierkv's upsert, on a table of the same shape), a connection per loop",
  },
  etcd: { kind: "etcd", workloads: WORKLOADS, needs: "etcd", description: "etcd 3.x, one member" },
  "grpc-ceiling": { kind: "tierkv", workloads: WORKLOADS, description: "do-nothing KVStoreService on tierkv's own service glue and protobuf-es codec" },
  "grpc-ceiling-raw": { kind: "tierkv", workloads: WORKLOADS, description: "do-nothing grpc-js handlers, pass-through codec, no tierkv code" },
};

export interface RunningTarget {
  readonly name: TargetName;
  readonly kind: DriverKind;
  /** Where load goes (two for two instances). */
  readonly addresses: readonly string[];
  readonly pids: readonly number[];
  /** The database server's root process (PostgreSQL targets). */
  readonly databasePid?: number;
  /** The target's PostgreSQL database (PostgreSQL targets). */
  readonly databaseUri?: string;
  /**
   * With `profileDir`: where each server process (in `pids` order) writes its CPU profile when it
   * stops, and what it is ("tierkv"; for the chain, "tierkv backup"; beside a leader, "tierkv follower").
   */
  readonly profiles?: ReadonlyArray<{ readonly path: string; readonly role: string }>;
  /** The follower beside the leader (tierkv-sqlite+follower), whose lag the run samples. */
  readonly follower?: { readonly address: string };
  stop(): Promise<void>;
}

/** What targets share within a run: the one PostgreSQL server. */
export interface TargetEnvironment {
  readonly postgres?: BenchPostgres;
  /** Run tierkv's server processes under `node --cpu-prof`, writing their profiles here on exit. */
  readonly profileDir?: string;
}

/** Every server process started and not yet stopped: killed if the bench itself is stopped. */
const live = new Set<ChildProcess>();
/** Processes not started by us directly (the embedded PostgreSQL) to stop if the bench is stopped. */
const liveForeign = new Set<number>();
export function stopAtExit(pid: number): () => void {
  liveForeign.add(pid);
  return () => liveForeign.delete(pid);
}
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
  for (const pid of liveForeign) {
    try {
      process.kill(pid, "SIGQUIT"); // PostgreSQL's immediate shutdown
    } catch {
      // already gone
    }
  }
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/**
 * The built CLI: beside dist/bench/ when running built, under dist/ when imported from source (tests).
 * TIERKV_BENCH_CLI names another build's CLI instead, to compare two builds with one harness.
 */
const CLI =
  process.env.TIERKV_BENCH_CLI ??
  [new URL("../src/cli/main.js", import.meta.url), new URL("../dist/src/cli/main.js", import.meta.url)]
    .map((url) => fileURLToPath(url))
    .find((path) => existsSync(path)) ??
  fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const CEILING = fileURLToPath(new URL("./ceiling-server.js", import.meta.url));
const RAW_CEILING = fileURLToPath(new URL("./raw-ceiling-server.js", import.meta.url));
export const TIERKV_CLI = CLI;

/** Starts `command` and resolves with the first stdout line `pick` accepts. */
export function startProcess(command: string, args: string[], pick: (line: string) => string | undefined): Promise<{ child: ChildProcess; address: string }> {
  const child = track(spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] }));
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const address = pick(line);
      if (address !== undefined) resolve({ child, address });
    });
    child.once("exit", (code) => reject(new Error(`${command} exited (${code}) before it was ready: ${stderr}`)));
  });
}

export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** The address of tierkv's "listening" log line (or its VSS listener's, `field` "vss"). */
export function tierkvListening(line: string, field: "address" | "vss" = "address"): string | undefined {
  try {
    const entry = JSON.parse(line) as { msg?: string; address?: string; vss?: string };
    return entry.msg === "listening" ? entry[field] : undefined;
  } catch {
    return undefined;
  }
}

let vssListen: boolean | undefined;
/** Whether this tierkv serves VSS (`tierkv serve --help` lists --vss-listen). */
export function vssAvailable(): boolean {
  vssListen ??= execFileSync(process.execPath, [CLI, "serve", "--help"], { encoding: "utf8" }).includes("--vss-listen");
  return vssListen;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Refreshes the planner statistics of a target's PostgreSQL database after its data was written,
 * as autovacuum would within a minute or so. Until then PostgreSQL has none for the fresh tables
 * and may answer a point read through the (namespace, seq) index, filtering every key of the
 * namespace: a cell would measure that mis-plan instead of the steady state.
 */
export async function analyzeDatabase(target: RunningTarget): Promise<void> {
  if (target.databaseUri === undefined) return;
  const client = new pg.Client({ connectionString: target.databaseUri });
  await client.connect();
  try {
    await client.query("ANALYZE");
  } finally {
    await client.end();
  }
}

/** Whether an `etcd` binary is on the PATH (Debian: etcd-server). */
export function etcdInstalled(): boolean {
  try {
    execFileSync("etcd", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Waits until etcd answers on its client port (it logs to stderr, so poll the port). */
async function startEtcd(dataDir: string): Promise<{ child: ChildProcess; address: string }> {
  const [client, peer] = [await freePort(), await freePort()];
  const child = track(spawn(
    "etcd",
    [
      "--data-dir", dataDir,
      "--listen-client-urls", `http://127.0.0.1:${client}`,
      "--advertise-client-urls", `http://127.0.0.1:${client}`,
      "--listen-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-cluster", `default=http://127.0.0.1:${peer}`,
      "--log-level", "error",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  ));
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderr}`);
    const ready = await fetch(`http://127.0.0.1:${client}/health`).then(
      async (response) => response.ok && ((await response.json()) as { health?: string }).health === "true",
      () => false,
    );
    if (ready) return { child, address: `127.0.0.1:${client}` };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopProcess(child);
  throw new Error(`etcd did not become healthy: ${stderr}`);
}

/**
 * A follower's credentials in `dir`: a token with the replicate role in a file only we read, and
 * an identities file holding its hash (the hand-written format of README "Creating tokens"; no
 * `tierkv token add` process, whose start-up would lengthen every start of the target).
 */
function replicateCredentials(dir: string): { identitiesFile: string; tokenFile: string } {
  const token = `tkv_${randomBytes(32).toString("base64url")}`;
  const identity = { name: "bench-follower", tokenSha256: createHash("sha256").update(token).digest("hex"), store: "bench-follower", roles: ["replicate"] };
  const identitiesFile = join(dir, "identities.json");
  const tokenFile = join(dir, "follower.token");
  writeFileSync(identitiesFile, `${JSON.stringify({ identities: [identity] })}\n`, { mode: 0o600 });
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  return { identitiesFile, tokenFile };
}

/**
 * `count` Watch streams on the default store (the bench's), from now, on a namespace nothing
 * writes: the server wakes and filters them at every commit, as it does for watchers of other
 * namespaces. Returns what stops them.
 */
async function idleWatchers(address: string, count: number): Promise<() => Promise<void>> {
  const client = new TierkvClient({ address });
  const stop = new AbortController();
  const streams = Array.from({ length: count }, () => client.watch({ primaryNamespace: "idle" }, stop.signal)[Symbol.asyncIterator]());
  // Each stream is open once its first message (progress, sent at once) arrived.
  await Promise.all(streams.map((stream) => stream.next()));
  const running = streams.map(async (stream) => {
    for (let next = await stream.next(); !next.done; next = await stream.next()) {
      if (next.value.kind === "change") throw new Error("an idle watcher saw a change");
    }
  });
  return async () => {
    stop.abort();
    await Promise.allSettled(running);
    await client.close();
  };
}

/** Starts `name` with fresh data (a temp dir, a new database) that `stop()` removes. */
export async function startTarget(name: TargetName, environment: TargetEnvironment = {}): Promise<RunningTarget> {
  const dir = mkdtempSync(join(tmpdir(), `tierkv-bench-${name}-`));
  const children: ChildProcess[] = [];
  const profiles: Array<{ path: string; role: string }> = [];
  const tierkv = async (...args: string[]): Promise<string> => {
    const profiling: string[] = [];
    if (environment.profileDir !== undefined) {
      const role =
        name === "tierkv-sqlite+remote-backup" && children.length === 0 ? "tierkv backup" : name === "tierkv-sqlite+follower" && children.length === 1 ? "tierkv follower" : "tierkv";
      const file = `${name}-${children.length}.cpuprofile`;
      profiles.push({ path: join(environment.profileDir, file), role });
      profiling.push("--cpu-prof", `--cpu-prof-dir=${environment.profileDir}`, `--cpu-prof-name=${file}`);
    }
    const started = await startProcess(process.execPath, [...profiling, CLI, "serve", "--listen", "127.0.0.1:0", ...args], (line) => tierkvListening(line));
    children.push(started.child);
    return started.address;
  };
  const database = async (): Promise<{ uri: string; pid: number | undefined }> => {
    const postgres = environment.postgres;
    if (postgres === undefined) throw new Error(`${name} needs the benchmark's PostgreSQL, which is not running`);
    return { uri: await postgres.createDatabase(), pid: postgres.postmasterPid };
  };
  let address: string;
  let addresses: string[] | undefined;
  let databasePid: number | undefined;
  let databaseUri: string | undefined;
  let watchers: (() => Promise<void>) | undefined;
  let follower: { address: string } | undefined;
  const kind = TARGET_INFO[name].kind;
  try {
    switch (name) {
      case "tierkv-sqlite":
        address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`);
        break;
      case "tierkv-sqlite+sqlite-backup":
        address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `sqlite:${join(dir, "b.db")}`);
        break;
      case "tierkv-sqlite+100-watchers": {
        address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`);
        watchers = await idleWatchers(address, 100);
        break;
      }
      case "tierkv-sqlite+follower": {
        // The leader also serves unauthenticated callers (loopback), so the load is the same as
        // tierkv-sqlite's; only the follower presents a token, which must hold the replicate role.
        const { identitiesFile, tokenFile } = replicateCredentials(dir);
        address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`, "--auth", "none,tokens", "--tokens-file", identitiesFile);
        // The query is URL-decoded: the "+" of the temp dir's name would read as a space.
        follower = { address: await tierkv("--primary", `sqlite:${join(dir, "f.db")}`, "--follow", `grpc://${address}?token_file=${encodeURIComponent(tokenFile)}`) };
        // Its first full copy (of an empty leader) done: the cells measure tailing only.
        await waitUntilTailing(follower.address);
        break;
      }
      case "tierkv-sqlite+remote-backup": {
        const backup = await tierkv("--primary", `sqlite:${join(dir, "b.db")}`);
        address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `grpc://${backup}`);
        break;
      }
      case "tierkv-vss":
      case "tierkv-connect": {
        const started = await startProcess(
          process.execPath,
          [CLI, "serve", "--listen", "127.0.0.1:0", "--vss-listen", "127.0.0.1:0", "--primary", `sqlite:${join(dir, "a.db")}`],
          (line) => tierkvListening(line, "vss"),
        );
        children.push(started.child);
        ({ address } = started);
        break;
      }
      case "tierkv-postgres":
      case "tierkv-postgres-x2": {
        const { uri, pid } = await database();
        [databasePid, databaseUri] = [pid, uri];
        address = await tierkv("--primary", uri);
        if (name === "tierkv-postgres-x2") addresses = [address, await tierkv("--primary", uri)];
        break;
      }
      case "pg-bare": {
        const { uri, pid } = await database();
        [databasePid, databaseUri] = [pid, uri];
        const client = new pg.Client({ connectionString: uri });
        await client.connect();
        try {
          await client.query(BARE_SCHEMA);
        } finally {
          await client.end();
        }
        address = uri;
        break;
      }
      case "etcd": {
        const etcd = await startEtcd(join(dir, "etcd"));
        children.push(etcd.child);
        ({ address } = etcd);
        break;
      }
      case "grpc-ceiling":
      case "grpc-ceiling-raw": {
        const script = name === "grpc-ceiling" ? CEILING : RAW_CEILING;
        const ceiling = await startProcess(process.execPath, [script], (line) => (JSON.parse(line) as { address: string }).address);
        children.push(ceiling.child);
        ({ address } = ceiling);
        break;
      }
    }
  } catch (error) {
    await watchers?.();
    for (const child of children.reverse()) await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    name,
    kind,
    addresses: addresses ?? [address],
    ...(databasePid !== undefined && { databasePid }),
    ...(databaseUri !== undefined && { databaseUri }),
    ...(profiles.length > 0 && { profiles }),
    ...(follower !== undefined && { follower }),
    pids: children.map((child) => child.pid!),
    async stop() {
      await watchers?.();
      for (const child of children.reverse()) await stopProcess(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
