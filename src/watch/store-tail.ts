//! The shared tail of one store's change log: the watchers that have caught up (members) wait on
//! it, and it reads each commit's changes once and hands every member those it matches. A commit
//! then costs one read and a filter per member, and wakes only the members it concerns (100 idle
//! watchers each reading on their own doubled a write's CPU). A member that does not take what it
//! was handed (more than a page) is dropped with where to resume, and reads the log itself again.

import { WATCH_PAGE_CHANGES } from "../limits.js";
import { StoreError } from "../store/errors.js";
import type { Change, ChangesPage } from "../store/types.js";

/** A caught-up watcher. */
export class TailMember {
  /** Changes handed over and not yet taken, in order. */
  queue: Change[] = [];
  /** Why it left the tail: it must read the log itself from `resumeAt` (or fail with `error`). */
  left: { readonly resumeAt: bigint } | { readonly error: StoreError } | undefined;
  private waking: (() => void) | undefined;

  constructor(
    readonly values: boolean,
    readonly matches: (change: Change) => boolean,
  ) {}

  /** Resolves when the tail hands something over or drops it, at `ms`, or when `signal` aborts. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.queue.length > 0 || this.left !== undefined || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.waking = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.waking = done;
    });
  }

  wake(): void {
    this.waking?.();
  }
}

export class StoreTail {
  readonly members = new Set<TailMember>();
  private reading = false;
  private again = false;

  /** `next`: the first sequence the tail has not read. */
  constructor(
    private readonly read: (from: bigint, values: boolean) => Promise<ChangesPage>,
    public next: bigint,
  ) {}

  /** A watcher whose next sequence is `next` may join (it has read everything before it). */
  canJoin(next: bigint): boolean {
    return !this.reading && next === this.next;
  }

  /** Reads what was committed since `next` and hands it over; one read at a time, again when asked meanwhile. */
  advance(): void {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    void this.readAll().finally(() => (this.reading = false));
  }

  private async readAll(): Promise<void> {
    do {
      this.again = false;
      const values = [...this.members].some((member) => member.values);
      let page: ChangesPage;
      try {
        page = await this.read(this.next, values);
      } catch (error) {
        this.dropAll(() => ({ error: StoreError.from(error) }));
        return;
      }
      if (page.oldest > this.next) {
        // Pruned before the tail read it: each member finds out reading the log itself.
        this.dropAll(() => ({ resumeAt: this.next }));
        return;
      }
      for (const change of page.changes) {
        for (const member of this.members) {
          if (!member.matches(change)) continue;
          if (member.values) member.queue.push(change);
          else {
            const { value: _value, superseded: _superseded, ...bare } = change;
            member.queue.push(bare);
          }
        }
        this.next = change.seq + 1n;
      }
      for (const member of this.members) {
        if (member.queue.length > WATCH_PAGE_CHANGES) this.drop(member, { resumeAt: member.queue[0]!.seq });
        else if (member.queue.length > 0) member.wake();
      }
      if (page.changes.length > 0 && this.next <= page.latest) this.again = true;
    } while (this.again && this.members.size > 0);
  }

  private drop(member: TailMember, left: NonNullable<TailMember["left"]>): void {
    member.queue = [];
    member.left = left;
    this.members.delete(member);
    member.wake();
  }

  private dropAll(left: () => NonNullable<TailMember["left"]>): void {
    for (const member of [...this.members]) this.drop(member, left());
  }
}
