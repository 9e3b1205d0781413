//! A follower (`serve --follow grpc://LEADER`, contract §9.5): tails its leader's changes of every
//! store with one `all_stores` Watch and applies them to its own primary exactly (the leader's
//! versions and revisions), each batch in one transaction with the positions it reaches. After a
//! restart or a broken connection it resumes from those positions; when the leader no longer has
//! the history that needs (or never gave this follower a full copy), it copies the leader in full
//! and carries on from the heads it noted before the copy.

import {
  FOLLOW_BATCH_BYTES,
  FOLLOW_BATCH_CHANGES,
  FOLLOW_COPY_WINDOW,
  FOLLOW_FIRST_MESSAGE_MS,
  FOLLOW_QUEUE_BYTES,
  FOLLOW_QUEUE_CHANGES,
  FOLLOW_RETRY_BACKOFF_MS,
} from "../limits.js";
import type { Logger } from "../log.js";
import { checkRemoteUri, type RemoteStore } from "../remote/remote-store.js";
import { StoreError } from "../store/errors.js";
import { readOrAbsent } from "../store/read-or-absent.js";
import { scanAllKeys } from "../store/scan.js";
import { compareKeys, storeIdOf, type Change, type KVStore, type KeyRef, type KeyVersion, type TxnOperation } from "../store/types.js";
import { isInternalStore } from "../store/names.js";
import { formatPath } from "../store/validate.js";
import { forgetCopy, positionWrite, readRecords, recordCopy } from "./positions.js";

/** How a follower keeps up, for `backup-status` and metrics. */
export interface FollowerStatus {
  /** The leader as `grpc://HOST:PORT` (its parameters left out: they name key and token files). */
  readonly leader: string;
  readonly state: "connecting" | "copying" | "tailing";
  /** Whether the watch of the leader is open. */
  readonly connected: boolean;
  /** Changes the leader committed that are not applied here yet (last known while disconnected). */
  readonly lagChanges: number;
  /**
   * While `lagChanges` > 0: seconds since the commit of the oldest change received and not yet
   * applied, or, when none waits, of the last change applied; 0 when caught up.
   */
  readonly lagSeconds: number;
  /** Changes applied since the process started. */
  readonly appliedChanges: number;
  readonly fullCopies: number;
  /** Why the last watch or copy failed; "" before any did. */
  readonly lastError: string;
}

/** Counts of one full copy. */
interface CopyCounts {
  copied: number;
  removed: number;
  unchanged: number;
}

/** `grpc://HOST:PORT` of a `--follow` URI: what messages and status may show of it. */
export function leaderName(uri: string): string {
  const url = checkRemoteUri(uri);
  return `${url.protocol}//${url.host}`;
}

/**
 * The operation applying one of the leader's changes exactly as the leader applied it; none for a
 * superseded put (its key changed again since, and that change follows: it decides the key).
 */
function operationOf(change: Change): TxnOperation[] {
  const ref = { storeId: change.storeId, primaryNamespace: change.primaryNamespace, secondaryNamespace: change.secondaryNamespace, key: change.key };
  if (change.kind === "remove") return [{ ...ref, kind: "remove", version: change.version }];
  if (change.superseded) return [];
  if (change.value === undefined) throw new StoreError("internal", `the leader sent ${formatPath(change)} (store ${change.storeId}) without its value`);
  return [{ ...ref, kind: "write", value: change.value, version: change.version, revision: change.revision }];
}

function keyOf(ref: KeyRef): string {
  return `${storeIdOf(ref)}\0${formatPath(ref)}`;
}

/** Waits `ms` (with jitter), or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms / 2 + (Math.random() * ms) / 2);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Changes received and not yet applied, applied in order by one loop: each batch takes changes
 * of distinct keys (a key's next change waits for the next batch), so per key the order holds.
 */
class ApplyQueue {
  private readonly queue: Change[] = [];
  private queuedBytes = 0;
  private inBatch: Change[] = [];
  private running: Promise<void> | undefined;
  failure: unknown;

  constructor(
    private readonly apply: (batch: Change[]) => Promise<void>,
    private readonly onFailure: () => void,
  ) {}

  push(change: Change): void {
    this.queue.push(change);
    this.queuedBytes += change.size;
    this.kick();
  }

  /** Received and not yet committed. */
  get size(): number {
    return this.queue.length + this.inBatch.length;
  }

  /** The commit time of the oldest change received and not yet committed. */
  get oldestCommitTime(): number | undefined {
    return (this.inBatch[0] ?? this.queue[0])?.time;
  }

  /** Whether the reader should wait before taking more from the stream (memory stays bounded). */
  get full(): boolean {
    return this.queue.length >= FOLLOW_QUEUE_CHANGES || this.queuedBytes >= FOLLOW_QUEUE_BYTES;
  }

  /** Resolves once everything pushed so far is applied (or the queue failed). */
  async drained(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private kick(): void {
    if (this.running !== undefined || this.failure !== undefined) return;
    this.running = this.pump().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        this.inBatch = this.take();
        await this.apply(this.inBatch);
        this.inBatch = [];
      }
    } catch (error) {
      this.failure = error;
      this.inBatch = [];
      this.onFailure();
    }
  }

  private take(): Change[] {
    const keys = new Set<string>();
    let bytes = 0;
    let count = 0;
    for (const change of this.queue) {
      const key = keyOf(change);
      if (count >= FOLLOW_BATCH_CHANGES || keys.has(key) || (count > 0 && bytes + change.size > FOLLOW_BATCH_BYTES)) break;
      keys.add(key);
      bytes += change.size;
      count++;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, count);
  }
}

export interface FollowerOptions {
  /** The leader, opened from the `--follow` URI (its client watches; its reads serve a full copy). */
  readonly leader: RemoteStore;
  /** `leaderName` of the URI. */
  readonly name: string;
  /** The follower's own primary backend: it takes exact transactions and keeps a change log. */
  readonly primary: KVStore;
  readonly logger: Logger;
}

export class Follower {
  private readonly stopping = new AbortController();
  private run: Promise<void> | undefined;
  private state: FollowerStatus["state"] = "connecting";
  private connected = false;
  /** The last sequence applied per leader store: what the primary's records say, once committed. */
  private positions = new Map<string, bigint>();
  /** The next sequence expected per store while tailing: a gap would be a change missed. */
  private expected = new Map<string, bigint>();
  private queue: ApplyQueue | undefined;
  /**
   * Each leader store's latest sequence by its last progress message. The lag is what separates
   * them from the positions applied here: exact for what the leader had committed by then, whatever
   * is still on the wire or queued (the leader's own `pending` counts only what it has not sent).
   */
  private leaderHeads = new Map<string, bigint>();
  /**
   * A leader older than these heads sends them in its first progress only; then the follower can
   * say no more than the changes that leader had not sent, plus those waiting here.
   */
  private leaderPending: bigint | undefined;
  private lastAppliedTime: number | undefined;
  private appliedChanges = 0;
  private fullCopies = 0;
  private lastError = "";

  constructor(private readonly options: FollowerOptions) {}

  /** Starts following in the background; `close()` stops. */
  start(): void {
    this.run ??= this.loop();
  }

  status(): FollowerStatus {
    let behind = 0n;
    for (const [storeId, head] of this.leaderHeads) {
      const applied = this.positions.get(storeId) ?? 0n;
      if (head > applied) behind += head - applied;
    }
    const lagChanges = this.leaderPending === undefined ? Number(behind) : Number(this.leaderPending) + (this.queue?.size ?? 0);
    // The oldest change received and not applied is the oldest the follower lacks (changes come in
    // order); with none waiting but some owed by the heads, the last applied bounds the age.
    const waiting = this.queue?.oldestCommitTime;
    const since = waiting ?? (lagChanges > 0 ? this.lastAppliedTime : undefined);
    return {
      leader: this.options.name,
      state: this.state,
      connected: this.connected,
      lagChanges,
      lagSeconds: since !== undefined ? Math.max(0, Date.now() - since) / 1000 : 0,
      appliedChanges: this.appliedChanges,
      fullCopies: this.fullCopies,
      lastError: this.lastError,
    };
  }

  /** Stops following: the watch ends, the batch being applied commits, nothing new starts. */
  async close(): Promise<void> {
    this.stopping.abort();
    await this.run;
  }

  private get signal(): AbortSignal {
    return this.stopping.signal;
  }

  /** Until stopped: resume from the positions, copy in full when told to, and try again after failures with backoff. */
  private async loop(): Promise<void> {
    const { logger, name, primary } = this.options;
    let delay: number = FOLLOW_RETRY_BACKOFF_MS.initial;
    let copyReason: string | undefined;
    let started = false;
    while (!this.signal.aborted) {
      try {
        if (!started) {
          const records = await readRecords(primary);
          this.positions = records.positions;
          if (records.copiedFrom !== name) {
            copyReason = records.copiedFrom === undefined ? "no full copy of the leader completed yet" : `the last full copy came from ${records.copiedFrom}`;
          }
          started = true;
        }
        if (copyReason !== undefined) {
          await this.copyAll(copyReason);
          copyReason = undefined;
        }
        copyReason = await this.tail(() => (delay = FOLLOW_RETRY_BACKOFF_MS.initial));
      } catch (error) {
        if (this.signal.aborted) break;
        const cause = StoreError.from(error);
        this.state = "connecting";
        this.lastError = cause.message;
        logger.warn({ leader: name, err: cause.message, retryInMs: delay }, "following the leader failed; trying again");
        await pause(delay, this.signal);
        delay = Math.min(FOLLOW_RETRY_BACKOFF_MS.max, delay * 2);
      }
    }
    this.state = "connecting";
  }

  /**
   * Tails the leader from the positions until the watch fails (thrown) or the leader answers
   * OUT_OF_RANGE (resolves with why a full copy is needed), or until stopped (undefined). What
   * arrived before a failure is applied first: it is in order.
   */
  private async tail(onOpen: () => void): Promise<string | undefined> {
    const { leader, logger, name } = this.options;
    const watch = new AbortController();
    const stop = (): void => watch.abort();
    this.signal.addEventListener("abort", stop, { once: true });
    const queue = new ApplyQueue((batch) => this.apply(batch), stop);
    this.queue = queue;
    this.expected = new Map([...this.positions].map(([storeId, applied]) => [storeId, applied + 1n]));
    const starts = new Map(this.expected);
    let failure: unknown;
    try {
      // Stores without a position (new to this follower since its copy) start at their first change.
      for await (const event of leader.client.watch({ allStores: true, values: true, start: 1n, starts }, watch.signal)) {
        if (!this.connected) {
          this.connected = true;
          this.state = "tailing";
          onOpen();
          logger.info({ leader: name, stores: starts.size }, "following the leader");
        }
        if (event.kind === "progress") {
          if (event.heads !== undefined) this.leaderHeads = new Map(event.heads);
          this.leaderPending = event.heads === undefined ? event.pending : undefined;
          continue;
        }
        const change = event.change;
        const expected = this.expected.get(change.storeId) ?? 1n;
        if (change.seq !== expected) {
          throw new StoreError("internal", `the leader's store ${change.storeId} sent sequence ${change.seq} where ${expected} was due; resuming from the last applied position`);
        }
        this.expected.set(change.storeId, expected + 1n);
        queue.push(change);
        if (queue.full) await queue.drained();
        if (queue.failure !== undefined) break;
      }
      if (queue.failure === undefined && !this.signal.aborted) failure = new StoreError("unavailable", "the leader ended the watch");
    } catch (error) {
      failure = error;
    } finally {
      watch.abort();
      this.signal.removeEventListener("abort", stop);
      this.connected = false;
      await queue.drained();
    }
    if (queue.failure !== undefined) throw queue.failure;
    if (failure === undefined) return undefined;
    const cause = StoreError.from(failure);
    if (cause.code === "out-of-range") return `the leader no longer has the changes this follower needs (${cause.message})`;
    throw failure;
  }

  /** Applies one batch and the positions it reaches in one transaction. */
  private async apply(batch: Change[]): Promise<void> {
    const reached = new Map<string, bigint>();
    for (const change of batch) reached.set(change.storeId, change.seq);
    const operations = [...batch.flatMap(operationOf), ...[...reached].map(([storeId, seq]) => positionWrite(storeId, seq))];
    await this.options.primary.txn({ checks: [], operations, exact: true });
    for (const [storeId, seq] of reached) this.positions.set(storeId, seq);
    this.appliedChanges += batch.length;
    this.lastAppliedTime = batch.at(-1)!.time;
  }

  /**
   * Copies the leader in full: notes its heads first, then makes every store here equal to the
   * leader's (keys read one by one, written exactly; keys the leader lacks removed), then records
   * the heads as the positions. Changes the leader commits during the copy are applied again
   * from those heads on, which ends in the leader's state whatever the copy read.
   */
  private async copyAll(reason: string): Promise<void> {
    const { logger, name, primary } = this.options;
    this.state = "copying";
    const started = Date.now();
    logger.info({ leader: name, reason }, "copying the leader in full");
    const heads = await this.readLeaderHeads();
    // Until the copy is done, the follower is behind by what separates its positions from the heads.
    this.leaderHeads = new Map(heads);
    this.leaderPending = undefined;
    // A copy that stops half-way (a crash, a failure) is made again, never resumed from.
    await forgetCopy(primary);
    const counts = await this.copyStores();
    await recordCopy(primary, heads, name, FOLLOW_BATCH_CHANGES);
    this.positions = new Map(heads);
    this.fullCopies++;
    logger.info({ leader: name, ...counts, stores: heads.size, ms: Date.now() - started }, "copied the leader in full; tailing from the heads noted before the copy");
  }

  /** Each of the leader's stores' latest sequence: the first message of an `all_stores` watch from now. */
  private async readLeaderHeads(): Promise<Map<string, bigint>> {
    const watch = new AbortController();
    const stop = (): void => watch.abort();
    this.signal.addEventListener("abort", stop, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), stop()), FOLLOW_FIRST_MESSAGE_MS);
    const events = this.options.leader.client.watch({ allStores: true, start: 0n }, watch.signal);
    try {
      const first = await events.next();
      if (timedOut) throw new StoreError("unavailable", `the leader did not say where its stores stand within ${FOLLOW_FIRST_MESSAGE_MS} ms`);
      if (first.done || first.value.kind !== "progress") {
        throw new StoreError("unavailable", "the leader's watch did not begin by saying where its stores stand");
      }
      return new Map(first.value.heads ?? []);
    } finally {
      clearTimeout(timer);
      this.signal.removeEventListener("abort", stop);
      watch.abort();
      await events.return(undefined);
    }
  }

  /** Makes every store here equal to the leader's, walking both in key order (as a resync does). */
  private async copyStores(): Promise<CopyCounts> {
    const { leader, primary } = this.options;
    const counts: CopyCounts = { copied: 0, removed: 0, unchanged: 0 };
    const next = async (scan: AsyncIterator<KeyVersion>): Promise<KeyVersion | undefined> => {
      for (;;) {
        const result = await scan.next();
        if (result.done) return undefined;
        // This follower's own records stay (the leader hides its own).
        if (!isInternalStore(result.value.storeId)) return result.value;
      }
    };
    const running = new Set<Promise<void>>();
    let failure: unknown;
    const copy = (ref: KeyRef): void => {
      const task = this.copyKey(ref).then(
        (outcome) => void counts[outcome]++,
        (error: unknown) => void (failure ??= error),
      );
      running.add(task);
      void task.finally(() => running.delete(task));
    };
    const theirs = scanAllKeys(leader, { allStores: true })[Symbol.asyncIterator]();
    const ours = scanAllKeys(primary, { allStores: true })[Symbol.asyncIterator]();
    let l = await next(theirs);
    let o = await next(ours);
    while ((l !== undefined || o !== undefined) && failure === undefined && !this.signal.aborted) {
      const order = l === undefined ? 1 : o === undefined ? -1 : compareKeys(l, o);
      if (order === 0 && l!.version === o!.version && l!.revision === o!.revision && l!.version !== 0n) {
        counts.unchanged++;
      } else {
        copy(order <= 0 ? l! : o!);
        if (running.size >= FOLLOW_COPY_WINDOW) await Promise.race(running);
      }
      if (order <= 0) l = await next(theirs);
      if (order >= 0) o = await next(ours);
    }
    await Promise.all(running);
    if (failure !== undefined) throw failure;
    if (this.signal.aborted) throw new StoreError("cancelled", "the server is stopping; the copy is made again at the next start");
    return counts;
  }

  /** Makes this follower's copy of `ref` the leader's: written exactly, or removed when the leader lacks it. */
  private async copyKey(ref: KeyRef): Promise<"copied" | "removed"> {
    const { leader, primary } = this.options;
    const source = await readOrAbsent(leader, ref);
    if (source === undefined) {
      await primary.remove(ref, { exact: true });
      return "removed";
    }
    await primary.write(ref, source.value, { exact: true, version: source.version, revision: source.revision });
    return "copied";
  }
}
