//! Watchers of a store's change log (contract §9). A watcher behind the log pulls pages from it
//! at its own cursor, so its memory is one page whatever it watches and however slowly it reads.
//! Once caught up it joins its store's shared tail (`store-tail.ts`), which takes each commit of
//! this process from `ChangeLog.onChanges` (reading it once when the backend does not hand it
//! over), or polls a database other instances also write (PostgreSQL), and hands it what matches; a member that falls a page behind reads on its own again.

import {
  DEFAULT_WATCH_PROGRESS_INTERVAL_MS,
  MAX_WATCHERS,
  WATCH_BUSY_PROGRESS_INTERVAL_MS,
  WATCH_PAGE_CHANGES,
  WATCH_PAGE_MAX_BYTES,
} from "../limits.js";
import { StoreError } from "../store/errors.js";
import type { Change, ChangeLog, ChangesPage } from "../store/types.js";
import { isInternalStore } from "../store/names.js";
import { StoreTail, TailMember } from "./store-tail.js";

/** What one watch follows. */
export interface WatchTarget {
  /** One store's changes, or every store's (`allStores`). */
  readonly storeId?: string;
  readonly allStores?: boolean;
  /** The first sequence to deliver; 0n: from now. With `allStores`, for stores not in `starts`. */
  readonly start: bigint;
  /** With `allStores`: the first sequence per store. */
  readonly starts?: ReadonlyMap<string, bigint>;
  /** Only changes of this primary namespace (and secondary, when given). */
  readonly primaryNamespace?: string;
  readonly secondaryNamespace?: string;
  readonly values: boolean;
}

export type WatchEvent =
  | { readonly kind: "change"; readonly change: Change }
  /**
   * Every matching change up to `sequence` (one store; 0n with `allStores`) was delivered; `pending`
   * are committed but not yet. `heads`: in every event of an `allStores` watch, each store's latest
   * sequence when it was sent (a follower notes them before it copies its leader in full, and
   * measures its lag against them).
   */
  | {
      readonly kind: "progress";
      readonly sequence: bigint;
      readonly pending: bigint;
      readonly time: number;
      readonly heads?: ReadonlyMap<string, bigint>;
    };

export interface ChangeFeedOptions {
  /** Poll interval for a log other processes also write; undefined: this process's commits are all there are. */
  readonly pollIntervalMs?: number;
  readonly progressIntervalMs?: number;
}

function shuttingDown(resumeFrom: string): StoreError {
  return new StoreError("unavailable", `the server is shutting down; resume from ${resumeFrom}`);
}

function outOfRange(message: string): StoreError {
  return new StoreError("out-of-range", message);
}

/** The first sequence a watcher may start from, and the checks of a start against the log's bounds. */
function checkStart(storeId: string, start: bigint, page: ChangesPage): void {
  if (start < page.oldest) {
    throw outOfRange(
      `store ${storeId}: changes before sequence ${page.oldest} are no longer kept (--watch-retention); ` +
        `start from ${page.oldest}, after copying the store`,
    );
  }
  if (start > page.latest + 1n) {
    throw outOfRange(`store ${storeId}: sequence ${start} is ahead of the store's latest change, ${page.latest}; start from ${page.latest + 1n} or earlier`);
  }
}

export class ChangeFeed {
  private readonly waiters = new Set<{ readonly storeId: string | undefined; readonly wake: () => void }>();
  private readonly inflight = new Map<string, Promise<ChangesPage>>();
  /** The shared tail of each store that has caught-up watchers, with its poll timer (shared logs). */
  private readonly tails = new Map<string, { readonly tail: StoreTail; readonly poll: NodeJS.Timeout | undefined }>();
  private readonly stopListening: () => void;
  private watchers = 0;
  /**
   * Commits of this process heard so far. A watcher notes it before it reads and, when it would
   * then wait, reads again instead if it moved: a commit that landed between its read and its wait
   * would otherwise wake nobody, and the watch would sit until its next progress.
   */
  private commits = 0;
  private closed = false;
  /** How long an idle watch goes without a message before it is sent progress. */
  private readonly progressInterval: number;

  constructor(
    private readonly log: ChangeLog,
    private readonly options: ChangeFeedOptions = {},
  ) {
    this.progressInterval = options.progressIntervalMs ?? DEFAULT_WATCH_PROGRESS_INTERVAL_MS;
    this.stopListening = log.onChanges((committed) => {
      this.commits++;
      for (const [storeId, changes] of committed) this.tails.get(storeId)?.tail.advance(changes);
      for (const waiter of this.waiters) if (waiter.storeId === undefined || committed.has(waiter.storeId)) waiter.wake();
    });
  }

  /** How many watches are open (metrics). */
  get open(): number {
    return this.watchers;
  }

  /**
   * One read of the log, shared by every watcher that asks for the same page at the same time
   * (between the same two commits: a read begun before a commit must not answer for after it).
   */
  private read(storeId: string, from: bigint, values: boolean, limit = WATCH_PAGE_CHANGES): Promise<ChangesPage> {
    const id = `${storeId}\0${from}\0${values}\0${limit}\0${this.commits}`;
    let page = this.inflight.get(id);
    if (page === undefined) {
      page = this.log.readChanges({ storeId, from, limit, values, maxBytes: WATCH_PAGE_MAX_BYTES }).finally(() => this.inflight.delete(id));
      this.inflight.set(id, page);
    }
    return page;
  }

  /** Resolves at a commit of `storeId` (any store when undefined), at `ms`, or when `signal` aborts. */
  private wait(storeId: string | undefined, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const waiter = { storeId, wake: () => done() };
      const timer = setTimeout(() => done(), Math.max(0, ms));
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(waiter);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * The watch's events until `signal` aborts. Throws `out-of-range` for a start the log no longer
   * (or does not yet) hold; `resource-exhausted` with the sequence to resume from when the
   * surface throws a stall in.
   */
  async *watch(target: WatchTarget, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    if (this.watchers >= MAX_WATCHERS) {
      throw new StoreError("resource-exhausted", `the server serves at most ${MAX_WATCHERS} watches at once; retry later`);
    }
    this.watchers++;
    try {
      yield* target.allStores ? this.watchAll(target, signal) : this.watchOne(target.storeId!, target, signal);
    } finally {
      this.watchers--;
    }
  }

  private matches(change: Change, target: WatchTarget): boolean {
    if (target.primaryNamespace === undefined) return true;
    if (change.primaryNamespace !== target.primaryNamespace) return false;
    return target.secondaryNamespace === undefined || change.secondaryNamespace === target.secondaryNamespace;
  }

  /**
   * Yields a change; a stall the surface throws in (its peer stopped reading) ends the watch with
   * where to resume: the change was handed over, so the next one.
   */
  private async *deliver(change: Change, resumeFrom: () => string): AsyncGenerator<WatchEvent> {
    try {
      yield { kind: "change", change };
    } catch (error) {
      if (error instanceof StoreError && error.reason === "stalled") {
        throw new StoreError("resource-exhausted", `the watcher fell behind: ${error.message}; resume from ${resumeFrom()}`, { reason: "stalled" });
      }
      throw error;
    }
  }

  private async *watchOne(storeId: string, target: WatchTarget, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    const bounds = await this.read(storeId, target.start === 0n ? 0n : target.start, false, 0);
    let next = target.start === 0n ? bounds.latest + 1n : target.start;
    checkStart(storeId, next, bounds);
    const progressInterval = this.progressInterval;
    let lastSent = 0;
    // A watch from now begins by saying where the store stands.
    if (target.start === 0n) {
      yield { kind: "progress", sequence: bounds.latest, pending: 0n, time: Date.now() };
      lastSent = Date.now();
    }
    let lastProgress = lastSent;
    while (!signal.aborted) {
      if (this.closed) throw shuttingDown(String(next));
      const seen = this.commits;
      const page = await this.read(storeId, next, target.values);
      if (next < page.oldest) throw outOfRange(`store ${storeId}: the watcher fell behind the kept changes (--watch-retention); copy the store and start from ${page.oldest}`);
      for (const change of page.changes) {
        next = change.seq + 1n;
        if (!this.matches(change, target)) continue;
        yield* this.deliver(change, () => String(next));
        lastSent = Date.now();
      }
      if (page.changes.length > 0 && next <= page.latest) {
        // A busy watch is told how far behind it is too, at the same pace.
        if (Date.now() - lastProgress >= progressInterval) {
          yield { kind: "progress", sequence: next - 1n, pending: page.latest - next + 1n, time: Date.now() };
          lastSent = lastProgress = Date.now();
        }
        continue;
      }
      const idleFor = Date.now() - lastSent;
      if (idleFor >= progressInterval) {
        yield { kind: "progress", sequence: next - 1n, pending: 0n, time: Date.now() };
        lastSent = lastProgress = Date.now();
        continue;
      }
      const member = this.join(storeId, next, target);
      if (member === undefined) {
        if (this.commits !== seen) continue;
        await this.wait(storeId, Math.min(progressInterval - idleFor, this.options.pollIntervalMs ?? Infinity), signal);
        continue;
      }
      try {
        const resumed = yield* this.followTail(storeId, member, signal, lastSent);
        next = resumed.next;
        lastSent = resumed.lastSent;
      } finally {
        this.leave(storeId, member);
      }
    }
  }

  /** Makes a caught-up watcher (its next sequence `next`) a member of its store's tail, when it can join now. */
  private join(storeId: string, next: bigint, target: WatchTarget): TailMember | undefined {
    let entry = this.tails.get(storeId);
    const created = entry === undefined;
    if (entry === undefined) {
      const tail = new StoreTail((from, values) => this.read(storeId, from, values), next);
      const every = this.options.pollIntervalMs;
      const poll = every === undefined ? undefined : setInterval(() => tail.advance(), every);
      poll?.unref();
      entry = { tail, poll };
      this.tails.set(storeId, entry);
    }
    if (!entry.tail.canJoin(next)) return undefined;
    const member = new TailMember(target.values, target.primaryNamespace, (change) => this.matches(change, target));
    entry.tail.add(member);
    // A new tail starts where its first member's last read ended: commits since then were
    // announced before it existed, so it reads once now. (A tail that exists heard them all.)
    if (created) entry.tail.advance();
    return member;
  }

  private leave(storeId: string, member: TailMember): void {
    const entry = this.tails.get(storeId);
    if (entry === undefined) return;
    entry.tail.remove(member);
    if (entry.tail.members.size === 0) {
      clearInterval(entry.poll);
      this.tails.delete(storeId);
    }
  }

  /**
   * A member's events: what the tail hands over, and progress while idle. Returns where to go on
   * reading the log when the tail dropped it.
   */
  private async *followTail(storeId: string, member: TailMember, signal: AbortSignal, lastSent: number): AsyncGenerator<WatchEvent, { next: bigint; lastSent: number }> {
    const progressInterval = this.progressInterval;
    const tail = this.tails.get(storeId)!.tail;
    while (!signal.aborted) {
      if (this.closed) throw shuttingDown(String(tail.next));
      const handed = member.queue;
      member.queue = [];
      for (const change of handed) {
        yield* this.deliver(change, () => String(change.seq + 1n));
        lastSent = Date.now();
      }
      const left = member.left;
      if (left !== undefined) {
        if ("error" in left) throw left.error;
        return { next: left.resumeAt, lastSent };
      }
      if (member.queue.length > 0) continue;
      const idleFor = Date.now() - lastSent;
      if (idleFor >= progressInterval) {
        // Caught up: every change before the tail's next that matched was handed over and taken.
        yield { kind: "progress", sequence: tail.next - 1n, pending: 0n, time: Date.now() };
        lastSent = Date.now();
        continue;
      }
      await member.wait(progressInterval - idleFor, signal);
    }
    return { next: tail.next, lastSent };
  }

  private async *watchAll(target: WatchTarget, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    const next = new Map<string, bigint>();
    const startOf = (storeId: string, head: bigint): bigint => target.starts?.get(storeId) ?? (target.start === 0n ? head + 1n : target.start);
    // The server's own records (a follower's positions) are nobody's to watch.
    const changeHeads = async (): Promise<Map<string, bigint>> => new Map([...(await this.log.changeHeads())].filter(([storeId]) => !isInternalStore(storeId)));
    const first = await changeHeads();
    for (const [storeId, head] of first) next.set(storeId, startOf(storeId, head));
    for (const [storeId, start] of target.starts ?? []) if (!next.has(storeId) && !isInternalStore(storeId)) next.set(storeId, start);
    // Stores that appear after the watch began start from their first change.
    const startNew = (): bigint => (target.start === 0n ? 1n : target.start);
    const progressInterval = this.progressInterval;
    // Every start is checked before anything is sent, those of stores the log does not know too
    // (a follower's position in a store this log never had is ahead of it).
    const checked = new Set<string>();
    for (const [storeId, from] of next) {
      checkStart(storeId, from, await this.read(storeId, from, false, 0));
      checked.add(storeId);
    }
    const busyProgressInterval = Math.min(progressInterval, WATCH_BUSY_PROGRESS_INTERVAL_MS);
    // The watch begins by saying where every store stands, and how much of that is still to come.
    let behind = 0n;
    for (const [storeId, head] of first) if (head >= next.get(storeId)!) behind += head - next.get(storeId)! + 1n;
    yield { kind: "progress", sequence: 0n, pending: behind, time: Date.now(), heads: first };
    let lastSent = Date.now();
    let lastProgress = lastSent;
    while (!signal.aborted) {
      if (this.closed) throw shuttingDown("each store's next sequence");
      const seen = this.commits;
      const heads = await changeHeads();
      let pending = 0n;
      let delivered = false;
      for (const [storeId, head] of heads) {
        const from = next.get(storeId) ?? startNew();
        if (!checked.has(storeId)) {
          checkStart(storeId, from, await this.read(storeId, from, false, 0));
          checked.add(storeId);
        }
        next.set(storeId, from);
        if (head < from) continue;
        const page = await this.read(storeId, from, target.values);
        if (from < page.oldest) throw outOfRange(`store ${storeId}: the watcher fell behind the kept changes (--watch-retention); copy the stores and start again`);
        for (const change of page.changes) {
          next.set(storeId, change.seq + 1n);
          if (!this.matches(change, target)) continue;
          yield* this.deliver(change, () => `each store's next sequence (store ${storeId}: ${next.get(storeId)})`);
          lastSent = Date.now();
          delivered = true;
        }
        const after = next.get(storeId)!;
        if (page.latest >= after) pending += page.latest - after + 1n;
      }
      // A busy watch is told the heads and how far behind it is, more often than an idle one.
      if ((pending > 0n || delivered) && Date.now() - lastProgress >= busyProgressInterval) {
        yield { kind: "progress", sequence: 0n, pending, time: Date.now(), heads };
        lastSent = lastProgress = Date.now();
      }
      if (delivered || pending > 0n) continue;
      const idleFor = Date.now() - lastSent;
      if (idleFor >= progressInterval) {
        yield { kind: "progress", sequence: 0n, pending, time: Date.now(), heads };
        lastSent = lastProgress = Date.now();
        continue;
      }
      if (this.commits !== seen) continue;
      await this.wait(undefined, Math.min(progressInterval - idleFor, this.options.pollIntervalMs ?? Infinity), signal);
    }
  }

  /** Ends every watch (UNAVAILABLE, with where to resume) and stops listening to the log. */
  close(): void {
    this.closed = true;
    this.stopListening();
    for (const { tail } of this.tails.values()) for (const member of tail.members) member.wake();
    for (const waiter of this.waiters) waiter.wake();
  }
}
