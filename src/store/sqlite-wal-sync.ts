//! Syncing SQLite's write-ahead log off the event loop.
//!
//! With synchronous=FULL SQLite fsyncs the WAL inside COMMIT, on the thread that runs it: a Node
//! server's only thread. The bench's breakdown showed the event loop blocked in fsync for about
//! half of its busy time per write (144 of 295 µs at 1 KiB, c=64, on a loaded machine), while
//! requests waited to be decoded. So the connection runs synchronous=NORMAL — in WAL mode a commit
//! hands its frames to the OS unsynced, while checkpoints (the WAL before its frames are copied,
//! the database after) and the WAL's header when the log starts over are still synced by SQLite —
//! and `WalSync` fdatasyncs the WAL file on libuv's thread pool; no mutation of a commit resolves
//! before that sync returns. The store commits the mutations queued meanwhile when it ends
//! (`whenSynced`), and they share the next sync.
//!
//! What the store adds around it:
//! - reads: a commit is visible on the connection before it is durable, so a read answers only
//!   once every commit it could have seen is synced (`durable`);
//! - a failed sync leaves what reached the disk unknown (Linux may drop the dirty pages and report
//!   the error once: PostgreSQL's "fsyncgate"), so the store refuses everything after one, never
//!   checkpoints again (it is not closed: closing checkpoints), and SQLite recovers the log from
//!   what is on disk at the next open.
//!
//! (A first version ran synchronous=OFF and checkpointed by itself; a review found that OFF also
//! skips the sync of the WAL header when the log starts over, so a power cut could pair new frames
//! with the old header and replay stale pages. NORMAL keeps that sync: SQLite's src/wal.c,
//! `walFrames`, syncs the header after writing frame 0 when `pWal->syncHeader` is set, with the
//! checkpoint's sync flags, citing ticket ff5be73dee; strace shows the fsync under NORMAL and none
//! under OFF.)

import { closeSync, fdatasync, openSync } from "node:fs";
import { StoreError } from "./errors.js";

interface Waiter {
  /** Resolved once commit number `upTo` is durable. */
  readonly upTo: number;
  readonly resolve: () => void;
  readonly reject: (error: StoreError) => void;
}

export class WalSync {
  private fd: number | undefined;
  /** Commits handed to the OS, and how many of them are known to be on disk. */
  private committed = 0;
  private synced = 0;
  /** A sync is running; `whenSynced` callbacks run once it ends. */
  syncing = false;
  private afterSync: (() => void)[] = [];
  /** In commit order (each waits for a later or the same commit as the one before it). */
  private waiters: Waiter[] = [];
  /** Set by a failed sync: every later call fails with it. */
  failure: StoreError | undefined;

  /** `databasePath`: the database file (its `-wal` beside it); `sync`: node's fdatasync, or one a test controls. */
  constructor(
    private readonly databasePath: string,
    private readonly sync: (fd: number, done: (error: NodeJS.ErrnoException | null) => void) => void = fdatasync,
  ) {}

  /** Counts a commit just handed to the OS; resolves once it is on disk. */
  commit(): Promise<void> {
    this.committed++;
    return this.until(this.committed);
  }

  /** Runs `then` once the sync running now has ended (at once when none runs). */
  whenSynced(then: () => void): void {
    if (this.syncing) this.afterSync.push(then);
    else then();
  }

  /** Resolves once every commit counted so far is on disk: at once (undefined) when it is. */
  durable(): Promise<void> | undefined {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.synced === this.committed ? undefined : this.until(this.committed);
  }

  private until(upTo: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo, resolve, reject });
      this.start();
    });
  }

  /** One fdatasync at a time; it covers every commit counted when it began. */
  private start(): void {
    if (this.syncing || this.synced === this.committed || this.failure !== undefined) return;
    let fd: number;
    try {
      // Opened at the first sync: the WAL exists once the database was written in WAL mode, and
      // it is the same file until the store closes (SQLite removes it only with the last connection).
      fd = this.fd ??= openSync(`${this.databasePath}-wal`, "r+");
    } catch (error) {
      return this.fail(error);
    }
    this.syncing = true;
    const upTo = this.committed;
    this.sync(fd, (error) => {
      this.syncing = false;
      if (error !== null) return this.fail(error);
      this.synced = upTo;
      let done = 0;
      while (done < this.waiters.length && this.waiters[done]!.upTo <= upTo) this.waiters[done++]!.resolve();
      this.waiters.splice(0, done);
      for (const then of this.afterSync.splice(0)) then();
      this.start();
    });
  }

  private fail(error: unknown): void {
    const code = error instanceof Error && "code" in error ? String(error.code) : "unknown error";
    // The message names no path: it may reach a client.
    this.failure = new StoreError("unavailable", `the disk failed to sync the store's log (${code}); the store refuses every call until tierkv is restarted`);
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.failure);
    // Deferred commits go on, to fail at once with the failure.
    for (const then of this.afterSync.splice(0)) then();
  }

  /** Closes the file; call once nothing is committed any more (every sync it waits for has ended). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
