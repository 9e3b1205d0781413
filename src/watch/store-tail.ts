//! The shared tail of one store's change log: the watchers that have caught up (members) wait on
//! it, and it takes each commit's changes once — as the commit hands them over, or read from the
//! log — and offers each change only to the members of its primary namespace (and those of all
//! namespaces), waking only the members it gave something. Measured in process (bench/watchers.ts,
//! 64 writers): 100 idle watchers each reading on their own doubled a write's CPU; a shared tail
//! that read each commit back cost 0.66x of the throughput; handing the commit over, 0.99x. A
//! member that does not take what it was handed (more than a page) is dropped with where to
//! resume, and reads the log itself again.

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

  /**
   * `primaryNamespace`: the only one whose changes it may match (undefined: any), so a commit is
   * offered only to the members that may want it; `matches` decides the rest.
   */
  constructor(
    readonly values: boolean,
    readonly primaryNamespace: string | undefined,
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
  /** The members by the primary namespace they watch (the key `undefined`: every namespace). */
  private readonly byNamespace = new Map<string | undefined, Set<TailMember>>();
  /** How many members want values (a commit handed over without them must be read instead). */
  private valueMembers = 0;
  private reading = false;
  private again = false;

  /** `next`: the first sequence the tail has not read. */
  constructor(
    private readonly read: (from: bigint, values: boolean) => Promise<ChangesPage>,
    public next: bigint,
  ) {}

  add(member: TailMember): void {
    this.members.add(member);
    if (member.values) this.valueMembers++;
    let members = this.byNamespace.get(member.primaryNamespace);
    if (members === undefined) {
      members = new Set();
      this.byNamespace.set(member.primaryNamespace, members);
    }
    members.add(member);
  }

  remove(member: TailMember): void {
    if (!this.members.delete(member)) return;
    if (member.values) this.valueMembers--;
    const members = this.byNamespace.get(member.primaryNamespace);
    members?.delete(member);
    if (members?.size === 0) this.byNamespace.delete(member.primaryNamespace);
  }

  /** A watcher whose next sequence is `next` may join (it has read everything before it). */
  canJoin(next: bigint): boolean {
    return !this.reading && next === this.next;
  }

  /**
   * Hands over what was committed since `next`: `committed` (a commit of this process, without
   * values) when it starts there and no member wants values, else what a read of the log finds;
   * one read at a time, again when asked meanwhile. Taking the commit's own changes spares each
   * commit a read of rows just written and their conversion (most of what 100 idle watchers cost).
   */
  advance(committed?: readonly Change[]): void {
    if (this.reading) {
      this.again = true;
      return;
    }
    if (committed !== undefined && committed[0]?.seq === this.next && !this.wantsValues()) {
      this.handOver(committed);
      return;
    }
    this.reading = true;
    void this.readAll().finally(() => (this.reading = false));
  }

  private async readAll(): Promise<void> {
    do {
      this.again = false;
      const values = this.wantsValues();
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
      this.handOver(page.changes);
      if (page.changes.length > 0 && this.next <= page.latest) this.again = true;
    } while (this.again && this.members.size > 0);
  }

  private wantsValues(): boolean {
    return this.valueMembers > 0;
  }

  /** Gives each member the changes it matches (with values only if it asked), from `next` on, in order. */
  private handOver(changes: readonly Change[]): void {
    const given = new Set<TailMember>();
    const offer = (change: Change, members: ReadonlySet<TailMember> | undefined): void => {
      for (const member of members ?? []) {
        if (!member.matches(change)) continue;
        if (member.values || (change.value === undefined && change.superseded === undefined)) member.queue.push(change);
        else {
          const { value: _value, superseded: _superseded, ...bare } = change;
          member.queue.push(bare);
        }
        given.add(member);
      }
    };
    for (const change of changes) {
      offer(change, this.byNamespace.get(undefined));
      offer(change, this.byNamespace.get(change.primaryNamespace));
      this.next = change.seq + 1n;
    }
    for (const member of given) {
      if (member.queue.length > WATCH_PAGE_CHANGES) this.drop(member, { resumeAt: member.queue[0]!.seq });
      else member.wake();
    }
  }

  private drop(member: TailMember, left: NonNullable<TailMember["left"]>): void {
    member.queue = [];
    member.left = left;
    this.remove(member);
    member.wake();
  }

  private dropAll(left: () => NonNullable<TailMember["left"]>): void {
    for (const member of [...this.members]) this.drop(member, left());
  }
}
