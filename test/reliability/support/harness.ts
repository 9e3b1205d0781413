//! Machinery of the crash and outage tests (issue 12): real `tierkv serve` processes that can be
//! killed, stopped and restarted on the same address; a load of single-writer clients whose every
//! mutation is tracked in `AcceptableStates`; readers of a tier's contents (SQLite file,
//! PostgreSQL); process sampling; and the CI / long ("torture") modes.
//!
//! Modes: by default every test runs a bounded number of events (CI). With
//! TIERKV_TORTURE_MINUTES=N each test runs until its share of N minutes is spent (see
//! scripts/torture.mjs); TIERKV_TORTURE_REPORT=FILE appends each test's summary as a JSON line.

import { appendFileSync, readdirSync, readFileSync } from "node:fs";
import { TierkvAdminClient } from "../../../src/client/admin-client.js";
import { TierkvClient, type ClientMutation } from "../../../src/client/client.js";
import { StoreError } from "../../../src/store/errors.js";
import type { KeyRef, TxnOperation } from "../../../src/store/types.js";
import { spawnServer, type ServerProcess } from "../../support/process.js";
import { allStoredRows } from "../../support/sqlite-rows.js";
import { ABSENT, type AcceptableStates, type Observed, type Snapshot } from "./acceptable.js";
import { makeValue, tagOf, type Tag } from "./checked-values.js";

// ---------------------------------------------------------------------------------------------
// Modes

const TORTURE_MINUTES = Number(process.env["TIERKV_TORTURE_MINUTES"] ?? "0");
export const LONG_MODE = Number.isFinite(TORTURE_MINUTES) && TORTURE_MINUTES > 0;

/** Each long-mode test's share of TIERKV_TORTURE_MINUTES (they run one after the other). */
export const TORTURE_SHARES = {
  "crash: sqlite primary and backup": 0.3,
  "crash: chained backup instance": 0.25,
  "crash: postgres primary": 0.1,
  "outages: degraded": 0.175,
  "outages: required": 0.175,
} as const;
export type TortureTest = keyof typeof TORTURE_SHARES;

export interface Budget {
  /** True while another event should run: until `ciEvents` (CI) or the share of time is spent (long). */
  more(eventsSoFar: number): boolean;
}

/** The test's timeout: `ciMs` in CI; its share of the torture time plus 10 minutes in long mode. */
export function testTimeout(test: TortureTest, ciMs: number): number {
  return LONG_MODE ? TORTURE_SHARES[test] * TORTURE_MINUTES * 60_000 + 10 * 60_000 : ciMs;
}

/** Call at the start of the test: the clock of its time share starts then. */
export function budget(test: TortureTest, ciEvents: number): Budget {
  const until = Date.now() + TORTURE_SHARES[test] * TORTURE_MINUTES * 60_000;
  return { more: (done) => done < ciEvents || (LONG_MODE && Date.now() < until) };
}

/** Prints a test's numbers (for the closing note) and appends them to TIERKV_TORTURE_REPORT. */
export function report(test: TortureTest, numbers: Record<string, unknown>): void {
  const line = JSON.stringify({ test, mode: LONG_MODE ? `long (${TORTURE_MINUTES} min)` : "ci", ...numbers });
  console.log(`[reliability] ${line}`);
  const file = process.env["TIERKV_TORTURE_REPORT"];
  if (file) appendFileSync(file, `${line}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export const between = (min: number, max: number): number => min + Math.floor(Math.random() * (max - min + 1));

/** Throws with the first violations (and how many there were), so a failure shows its evidence. */
export function assertNoViolations(violations: readonly string[], when: string): void {
  if (violations.length === 0) return;
  const shown = violations.slice(0, 25).join("\n  ");
  throw new Error(`${violations.length} violation(s) ${when}:\n  ${shown}${violations.length > 25 ? "\n  …" : ""}`);
}

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * One `tierkv serve` that can be killed, stopped and restarted. With `samePort`, every restart
 * listens on the address of the first start (a backup that others reach by a fixed URI).
 */
export class Instance {
  private process: ServerProcess | undefined;
  private fixedAddress: string | undefined;
  /** SIGKILLs survived (the store reopened on the same files afterwards). */
  kills = 0;
  starts = 0;

  constructor(
    readonly name: string,
    private readonly args: () => string[],
    private readonly options: { samePort?: boolean } = {},
  ) {}

  get running(): ServerProcess {
    if (this.process === undefined) throw new Error(`${this.name} is not running`);
    return this.process;
  }

  get address(): string {
    return this.fixedAddress ?? this.running.address;
  }

  get pid(): number {
    return this.running.child.pid!;
  }

  get isRunning(): boolean {
    return this.process !== undefined;
  }

  async start(): Promise<ServerProcess> {
    if (this.process !== undefined) throw new Error(`${this.name} is already running`);
    const listen = this.fixedAddress === undefined ? [] : ["--listen", this.fixedAddress];
    let lastError: unknown;
    // A port just released by a killed process is normally free at once; retry a few times anyway.
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        this.process = await spawnServer([...listen, ...this.args()]);
        if (this.options.samePort) this.fixedAddress ??= this.process.address;
        this.starts++;
        return this.process;
      } catch (error) {
        lastError = error;
        await sleep(300);
      }
    }
    throw new Error(`${this.name} did not restart: ${String(lastError)}`);
  }

  /** SIGKILL (also when stopped) and wait for the exit. */
  async kill(): Promise<void> {
    const running = this.running;
    this.process = undefined;
    running.child.kill("SIGKILL");
    await running.exited;
    this.kills++;
  }

  signal(signal: "SIGSTOP" | "SIGCONT"): void {
    this.running.child.kill(signal);
  }

  /** A clean stop (SIGTERM after SIGCONT), for the end of a test; returns the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    const running = this.process;
    if (running === undefined) return undefined;
    this.process = undefined;
    running.child.kill("SIGCONT");
    return running.kill("SIGTERM");
  }

  /** For cleanup after a failure: whatever state it is in, it goes. */
  async destroy(): Promise<void> {
    const running = this.process;
    this.process = undefined;
    if (running === undefined) return;
    running.child.kill("SIGKILL");
    await running.exited;
  }

  /** Log lines of the current process (JSON). */
  logs(): readonly string[] {
    return this.process?.logs ?? [];
  }
}

// ---------------------------------------------------------------------------------------------
// Admin and metrics

async function withAdmin<T>(address: string, use: (admin: TierkvAdminClient) => Promise<T>): Promise<T> {
  const admin = new TierkvAdminClient({ address, timeoutMs: 10_000 });
  try {
    return await use(admin);
  } finally {
    admin.close();
  }
}

/** Waits until the server's ledger owes the backup nothing and no heal runs; throws after `timeoutMs`. */
export async function waitOwedZero(address: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  let last = "no answer";
  while (Date.now() - started < timeoutMs) {
    // After an unclean stop the server heals the backup in the background (contract §4.13):
    // owed nothing and not healing is when the tiers agree.
    const owed = await withAdmin(address, (admin) => admin.backupStatus()).then(
      (status) => (status.healing ? Math.max(1, Number(status.owedKeys)) : Number(status.owedKeys)),
      (error: unknown) => (last = String(error), -1),
    );
    if (owed === 0) return Date.now() - started;
    if (owed > 0) last = `${owed} keys owed`;
    await sleep(100);
  }
  throw new Error(`the backup was still owed keys after ${timeoutMs} ms (${last})`);
}

/** Runs a resync through the AdminService; returns its final counts. */
export async function resync(address: string): Promise<{ copied: number; removed: number; unchanged: number }> {
  return withAdmin(address, async (admin) => {
    let last = { copied: 0, removed: 0, unchanged: 0 };
    for await (const progress of admin.resync()) {
      last = { copied: Number(progress.copied), removed: Number(progress.removed), unchanged: Number(progress.unchanged) };
    }
    return last;
  });
}

/** One gauge or counter from a Prometheus text page. */
export async function metric(metricsAddress: string, name: string): Promise<number> {
  const response = await fetch(`http://${metricsAddress}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const line = (await response.text()).split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no metric ${name}`);
  return Number(line.split(" ")[1]);
}

/** Samples a process's RSS, open descriptors and the in-flight keys metric, keeping the maxima. */
export class ProcessSampler {
  maxRssKiB = 0;
  maxFds = 0;
  maxInFlightKeys = 0;
  samples = 0;
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;

  constructor(
    private readonly pid: number,
    private readonly metricsAddress: string,
  ) {}

  start(intervalMs = 250): void {
    this.timer = setInterval(() => void this.sample(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  rssKiB(): number {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, "utf8"));
    return Number(match?.[1] ?? 0);
  }

  fds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  inFlightKeys(): Promise<number> {
    return metric(this.metricsAddress, "tierkv_mutations_in_flight_keys");
  }

  async sample(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      this.maxRssKiB = Math.max(this.maxRssKiB, this.rssKiB());
      this.maxFds = Math.max(this.maxFds, this.fds());
      this.maxInFlightKeys = Math.max(this.maxInFlightKeys, await this.inFlightKeys());
      this.samples++;
    } catch {
      // The process is being stopped or the metrics page is slow: the next sample counts.
    } finally {
      this.sampling = false;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a tier's contents

/** Caches value checks by (path, version, revision, length): a 1 MiB value is hashed once. */
function checkedReader(): (path: string, value: Buffer, version: bigint, revision: bigint) => Tag {
  const seen = new Map<string, Tag>();
  return (path, value, version, revision) => {
    const id = `${path}@${version}.${revision}:${value.byteLength}`;
    let tag = seen.get(id);
    if (tag === undefined) {
      tag = tagOf(path, value);
      seen.set(id, tag);
    }
    return tag;
  };
}

interface RawRow {
  primary_namespace: string;
  secondary_namespace: string;
  key: string;
  value: Buffer;
  version: bigint;
  revision: bigint;
}

function snapshotOf(rows: Iterable<RawRow>, check: ReturnType<typeof checkedReader>): Snapshot {
  const observed = new Map<string, Observed>();
  const corrupt: string[] = [];
  for (const row of rows) {
    const path = `${row.primary_namespace}/${row.secondary_namespace}/${row.key}`;
    try {
      observed.set(path, { tag: check(path, row.value, row.version, row.revision), version: row.version, revision: row.revision });
    } catch (error) {
      corrupt.push(`${path} (v${row.version}): ${(error as Error).message}`);
      observed.set(path, { tag: "corrupt", version: row.version, revision: row.revision });
    }
  }
  return { rows: observed, corrupt };
}

export type TierReader = () => Promise<Snapshot>;

/** The default store of a tierkv SQLite file (opened read-only; a live writer is fine). */
export function sqliteTier(file: string): TierReader {
  const check = checkedReader();
  return async () => snapshotOf(allStoredRows(file).filter((row) => row.store_id === "default"), check);
}

/** The default store of a tierkv PostgreSQL database, through `query`. */
export function postgresTier(query: (sql: string) => Promise<Array<Record<string, unknown>>>): TierReader {
  const check = checkedReader();
  return async () => {
    const rows = await query(
      `SELECT primary_namespace, secondary_namespace, key, value, version::text AS version, revision::text AS revision
       FROM tierkv_kv WHERE store_id = 'default'`,
    );
    return snapshotOf(
      rows.map((row) => ({
        primary_namespace: row["primary_namespace"] as string,
        secondary_namespace: row["secondary_namespace"] as string,
        key: row["key"] as string,
        value: row["value"] as Buffer,
        version: BigInt(row["version"] as string),
        revision: BigInt(row["revision"] as string),
      })),
      check,
    );
  };
}

/** Every key of the model read through a client of `address` (the primary's view). */
export async function clientTier(address: string, paths: readonly string[]): Promise<Snapshot> {
  const client = new TierkvClient({ address, timeoutMs: 30_000 });
  const rows = new Map<string, Observed>();
  const corrupt: string[] = [];
  try {
    for (let start = 0; start < paths.length; start += 64) {
      await Promise.all(
        paths.slice(start, start + 64).map(async (path) => {
          const [primaryNamespace, secondaryNamespace, key] = path.split("/") as [string, string, string];
          try {
            const read = await client.readVersioned({ primaryNamespace, secondaryNamespace, key });
            rows.set(path, { tag: tagOf(path, read.value), version: read.version, revision: read.revision });
          } catch (error) {
            if (error instanceof StoreError && error.code === "not-found") return;
            corrupt.push(`${path}: ${error instanceof Error ? error.message : String(error)}`);
          }
        }),
      );
    }
  } finally {
    await client.close();
  }
  return { rows, corrupt };
}

// ---------------------------------------------------------------------------------------------
// Load

export interface LoadOptions {
  readonly writers: number;
  /** Small-value keys per writer (`rel/w<n>/k<i>`). */
  readonly keysPerWriter: number;
  /** Each call's deadline. */
  readonly deadlineMs: number;
  /** Largest small value body. */
  readonly maxSmallBytes: number;
  /** Writers `w` with `w % bigEvery === 0` also write `bigBytes` values to `rel/w<n>/big`. */
  readonly bigEvery?: number;
  readonly bigBytes?: number;
  /** Chance that such a writer's single write goes to its big key. */
  readonly bigChance?: number;
  /** Relative weights of the kinds of call. */
  readonly mix: { readonly write: number; readonly remove: number; readonly mutate: number; readonly txn: number };
  /** How long past its deadline a call may stay unsettled before it counts as a hang. */
  readonly hangAfterMs: number;
  /** Writers sharing one client (one HTTP/2 connection). */
  readonly writersPerClient?: number;
}

export type CallKind = "write" | "remove" | "mutate" | "txn";

export interface LoadStats {
  calls: number;
  succeeded: number;
  /** Failed calls by error code. */
  errors: Record<string, number>;
  /** Calls unsettled `hangAfterMs` past their deadline (the load stops waiting for them). */
  hangs: number;
  /** Calls that settled more than 1 s past their deadline. */
  late: number;
  maxSettleMs: number;
}

const HANG = Symbol("hang");

/**
 * Single-writer clients: writer `w` owns the keys `rel/w<w>/…` and issues one call at a time
 * (writes, removes, Mutate batches, Txns), recording each mutation in `model`. `pause()` closes a
 * gate and resolves once every writer has settled its call and parked; `resume()` reopens it.
 */
export class Load {
  readonly stats: LoadStats = { calls: 0, succeeded: 0, errors: {}, hangs: 0, late: 0, maxSettleMs: 0 };
  private clients: TierkvClient[] = [];
  private stopped = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private parked = 0;
  private onParked: (() => void) | undefined;
  private readonly sequences: number[];
  private readonly loops: Promise<void>[] = [];
  /** Violations seen by the load itself (unexpected error codes, late or hanging calls). */
  readonly violations: string[] = [];
  /** Error codes a call may fail with; others are violations. */
  allowedErrors: ReadonlySet<string> = new Set(["unavailable", "deadline-exceeded"]);

  constructor(
    private readonly model: AcceptableStates,
    private readonly options: LoadOptions,
  ) {
    this.sequences = Array.from({ length: options.writers }, () => 0);
    for (let w = 0; w < options.writers; w++) {
      for (let i = 0; i < options.keysPerWriter; i++) model.register(this.path(w, `k${i}`));
      if (this.hasBig(w)) model.register(this.path(w, "big"));
    }
  }

  /** Every key the load may write. */
  paths(): string[] {
    const paths: string[] = [];
    for (let w = 0; w < this.options.writers; w++) {
      for (let i = 0; i < this.options.keysPerWriter; i++) paths.push(this.path(w, `k${i}`));
      if (this.hasBig(w)) paths.push(this.path(w, "big"));
    }
    return paths;
  }

  private hasBig(w: number): boolean {
    return this.options.bigEvery !== undefined && w % this.options.bigEvery === 0;
  }

  private path(w: number, key: string): string {
    return `rel/w${w}/${key}`;
  }

  private ref(path: string): KeyRef {
    const [primaryNamespace, secondaryNamespace, key] = path.split("/") as [string, string, string];
    return { primaryNamespace, secondaryNamespace, key };
  }

  /** Points the writers at `address` (new connections; the old ones are closed). */
  target(address: string): void {
    for (const client of this.clients) void client.close();
    const count = Math.ceil(this.options.writers / (this.options.writersPerClient ?? 1));
    this.clients = Array.from({ length: count }, () => new TierkvClient({ address, timeoutMs: this.options.deadlineMs }));
  }

  start(): void {
    for (let w = 0; w < this.options.writers; w++) this.loops.push(this.run(w));
  }

  /** Closes the gate; resolves once every writer is parked (its call settled or declared hung). */
  pause(): Promise<void> {
    if (this.gate === undefined) this.gate = new Promise((resolve) => (this.openGate = resolve));
    return new Promise((resolve) => {
      if (this.parked === this.options.writers) return resolve();
      this.onParked = resolve;
    });
  }

  resume(): void {
    const open = this.openGate;
    this.gate = undefined;
    this.openGate = undefined;
    open?.();
  }

  /** Stops every writer after its current call; resolves when all have. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.resume();
    await Promise.all(this.loops);
    for (const client of this.clients.splice(0)) await client.close();
  }

  private async run(w: number): Promise<void> {
    while (!this.stopped) {
      if (this.gate !== undefined) {
        this.parked++;
        if (this.parked === this.options.writers) this.onParked?.();
        await this.gate;
        this.parked--;
        continue;
      }
      await this.operation(w);
    }
  }

  private pick(): CallKind {
    const { mix } = this.options;
    let r = Math.random() * (mix.write + mix.remove + mix.mutate + mix.txn);
    for (const kind of ["write", "remove", "mutate", "txn"] as const) {
      if ((r -= mix[kind]) < 0) return kind;
    }
    return "write";
  }

  /** `count` distinct small keys of writer `w`. */
  private keysOf(w: number, count: number): string[] {
    const all = Array.from({ length: this.options.keysPerWriter }, (_, i) => this.path(w, `k${i}`));
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, count);
  }

  private value(w: number, path: string, big = false): { tag: Tag; value: Buffer } {
    const bytes = big ? this.options.bigBytes! : between(0, this.options.maxSmallBytes);
    return makeValue(path, w, ++this.sequences[w]!, bytes);
  }

  /** Runs one call; never rejects. `undefined` result: the call failed or hung. */
  private async call<T>(kind: CallKind, run: (client: TierkvClient, deadline: number) => Promise<T>, w: number): Promise<T | undefined> {
    const client = this.clients[Math.floor(w / (this.options.writersPerClient ?? 1))]!;
    const started = Date.now();
    const deadline = started + this.options.deadlineMs;
    this.stats.calls++;
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<typeof HANG>((resolve) => (timer = setTimeout(() => resolve(HANG), this.options.deadlineMs + this.options.hangAfterMs)));
    const outcome = await Promise.race([
      run(client, deadline).then(
        (value) => ({ value }),
        (error: unknown) => ({ error: StoreError.from(error) }),
      ),
      hang,
    ]);
    clearTimeout(timer);
    const elapsed = Date.now() - started;
    this.stats.maxSettleMs = Math.max(this.stats.maxSettleMs, elapsed);
    if (outcome === HANG) {
      this.stats.hangs++;
      this.violations.push(`${kind} by writer ${w} did not settle ${elapsed} ms after it started (deadline ${this.options.deadlineMs} ms)`);
      return undefined;
    }
    if (elapsed > this.options.deadlineMs + 1_000) {
      this.stats.late++;
      this.violations.push(`${kind} by writer ${w} settled after ${elapsed} ms, past its ${this.options.deadlineMs} ms deadline + 1 s`);
    }
    if ("error" in outcome) {
      const code = outcome.error.code;
      this.stats.errors[code] = (this.stats.errors[code] ?? 0) + 1;
      if (!this.allowedErrors.has(code)) this.violations.push(`${kind} by writer ${w} failed with ${code}: ${outcome.error.message}`);
      return undefined;
    }
    this.stats.succeeded++;
    return outcome.value;
  }

  private async operation(w: number): Promise<void> {
    const kind = this.pick();
    if (kind === "write") {
      const big = this.hasBig(w) && Math.random() < (this.options.bigChance ?? 0);
      const path = big ? this.path(w, "big") : this.keysOf(w, 1)[0]!;
      const { tag, value } = this.value(w, path, big);
      this.model.begin(path, tag);
      const outcome = await this.call(kind, (client, deadline) => client.write(this.ref(path), value, { deadline }), w);
      this.settle(path, tag, outcome, kind);
    } else if (kind === "remove") {
      const path = this.keysOf(w, 1)[0]!;
      this.sequences[w]!++;
      this.model.begin(path, ABSENT);
      const outcome = await this.call(kind, (client, deadline) => client.remove(this.ref(path), { deadline }), w);
      this.settle(path, ABSENT, outcome, kind);
    } else if (kind === "mutate") {
      const planned = this.keysOf(w, between(2, 6)).map((path) =>
        Math.random() < 0.8 ? { path, ...this.value(w, path) } : { path, tag: ABSENT, value: undefined },
      );
      for (const m of planned) this.model.begin(m.path, m.tag);
      const mutations: ClientMutation[] = planned.map((m) =>
        m.value === undefined ? { ref: this.ref(m.path), remove: {} } : { ref: this.ref(m.path), write: m.value },
      );
      const results = await this.call(kind, (client, deadline) => client.mutate(mutations, { deadline }), w);
      planned.forEach((m, i) => {
        const result = results?.[i];
        this.settle(m.path, m.tag, result instanceof StoreError ? this.rejected(kind, w, result) : result, kind);
      });
    } else {
      const paths = this.keysOf(w, between(2, 4));
      const removed = paths.length > 2 && Math.random() < 0.5 ? paths.pop()! : undefined;
      const writes = paths.map((path) => ({ path, ...this.value(w, path) }));
      const txn = this.model.beginTxn(new Map(writes.map((m) => [m.path, m.tag])), removed === undefined ? [] : [removed]);
      const operations: TxnOperation[] = [
        ...writes.map((m): TxnOperation => ({ ...this.ref(m.path), kind: "write", value: m.value })),
        ...(removed === undefined ? [] : [{ ...this.ref(removed), kind: "remove" } as TxnOperation]),
      ];
      const result = await this.call(kind, (client, deadline) => client.txn({ checks: [], operations, deadline }), w);
      if (result !== undefined && !result.succeeded) this.violations.push(`a Txn without checks failed check ${result.failedCheck}`);
      const outcomes = result?.succeeded ? result.outcomes : [];
      writes.forEach((m, i) => this.settle(m.path, m.tag, outcomes[i], kind));
      if (removed !== undefined) this.settle(removed, ABSENT, outcomes[writes.length], kind);
      if (result?.succeeded) this.model.txnAcknowledged(txn);
    }
  }

  /** One failed mutation of a Mutate batch: counted like a failed call. */
  private rejected(kind: CallKind, w: number, error: StoreError): undefined {
    this.stats.errors[`${error.code} (in batch)`] = (this.stats.errors[`${error.code} (in batch)`] ?? 0) + 1;
    if (!this.allowedErrors.has(error.code)) this.violations.push(`${kind} by writer ${w}: a mutation failed with ${error.code}: ${error.message}`);
    return undefined;
  }

  private settle(path: string, tag: Tag, outcome: "applied" | "stale" | undefined, kind: CallKind): void {
    if (outcome === "applied") this.model.acknowledged(path, tag);
    else if (outcome === "stale") this.model.stale(path, tag, kind);
    else this.model.failed();
  }
}
