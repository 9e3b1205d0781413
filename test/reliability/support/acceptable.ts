//! What a tier may hold for each key after crashes and outages: the set of acceptable states.
//!
//! Every key belongs to one writer, which issues its mutations one at a time, so a key has at most
//! one mutation in flight. An acknowledged mutation replaces the set with its own state (a later
//! acknowledged one supersedes every earlier one: its version is higher); an unacknowledged one
//! only adds its state (it may or may not have been applied). Once a check has seen what the
//! primary settled on, the set collapses to that state.

import type { Tag } from "./checked-values.js";

/** The state of a key that is not stored (never written, or removed). */
export const ABSENT: Tag = "absent";

/** What a tier holds for one key: the value's tag, version and revision. */
export interface Observed {
  readonly tag: Tag;
  readonly version: bigint;
  readonly revision: bigint;
}

/** A tier's contents: stored keys by path, and the values that failed their self-check. */
export interface Snapshot {
  readonly rows: ReadonlyMap<string, Observed>;
  readonly corrupt: readonly string[];
}

interface KeyModel {
  /**
   * The states the key may be in, oldest first: the last acknowledged (or observed) one, then the
   * unacknowledged mutations since, in the order they were sent.
   */
  history: Tag[];
  acceptable: Set<Tag>;
}

/** An unacknowledged Txn whose keys nothing touched since: it must be all there or not at all. */
interface PendingTxn {
  readonly writes: ReadonlyMap<string, Tag>;
  /**
   * The server restarted without waiting for the replay, which copies owed keys one at a time:
   * a kill during the replay may leave the backup with part of the Txn (the primary has all or
   * nothing; a later replay completes the backup).
   */
  backupMayBePartial: boolean;
}

export interface ModelStats {
  /** Mutations whose writer got a success (applied). */
  acknowledged: number;
  /** Mutations whose writer got an error (or no answer): applied or not, never torn. */
  unacknowledged: number;
  /** Acknowledged mutations found durable by a check (themselves, or superseded by a later one). */
  acknowledgedChecked: number;
  /** Key states compared with the acceptable set, all tiers and checks together. */
  keyChecks: number;
  /** Unacknowledged Txns checked for atomicity. */
  txnsChecked: number;
}

export class AcceptableStates {
  private readonly keys = new Map<string, KeyModel>();
  private pendingTxns: PendingTxn[] = [];
  private acknowledgedSinceCheck = 0;
  readonly stats: ModelStats = { acknowledged: 0, unacknowledged: 0, acknowledgedChecked: 0, keyChecks: 0, txnsChecked: 0 };
  /** Everything that broke a guarantee, with enough context to reproduce the finding. */
  readonly violations: string[] = [];

  /** Declares a key that starts absent. */
  register(path: string): void {
    this.keys.set(path, { history: [ABSENT], acceptable: new Set([ABSENT]) });
  }

  get size(): number {
    return this.keys.size;
  }

  private key(path: string): KeyModel {
    const key = this.keys.get(path);
    if (key === undefined) throw new Error(`unregistered key ${path}`);
    return key;
  }

  /** A mutation of `path` to `tag` (ABSENT for a remove) is sent. */
  begin(path: string, tag: Tag): void {
    const key = this.key(path);
    key.history.push(tag);
    key.acceptable.add(tag);
    this.pendingTxns = this.pendingTxns.filter((txn) => !txn.writes.has(path));
  }

  /** A Txn's writes and removes are sent: begins each, and remembers the batch for atomicity. */
  beginTxn(writes: ReadonlyMap<string, Tag>, removes: readonly string[]): PendingTxn {
    for (const [path, tag] of writes) this.begin(path, tag);
    for (const path of removes) this.begin(path, ABSENT);
    const txn = { writes, backupMayBePartial: false };
    this.pendingTxns.push(txn);
    return txn;
  }

  /** The Txn was acknowledged: nothing is left to check for atomicity. */
  txnAcknowledged(txn: PendingTxn): void {
    this.pendingTxns = this.pendingTxns.filter((t) => t !== txn);
  }

  acknowledged(path: string, tag: Tag): void {
    this.reset(this.key(path), tag);
    this.stats.acknowledged++;
    this.acknowledgedSinceCheck++;
  }

  private reset(key: KeyModel, tag: Tag): void {
    key.history = [tag];
    key.acceptable = new Set([tag]);
  }

  failed(): void {
    this.stats.unacknowledged++;
  }

  /** The server acknowledged a mutation without applying it: a lost write for a single writer. */
  stale(path: string, tag: Tag, how: string): void {
    this.violations.push(`${how}: ${path} = ${tag} acknowledged as stale although its writer is the key's only one`);
  }

  /**
   * Checks one tier: every key's state is acceptable, no value is torn, no unknown key exists,
   * and no unacknowledged Txn is half applied. Returns the violations found (also kept).
   */
  check(tier: string, snapshot: Snapshot, role: "primary" | "backup" = "primary"): string[] {
    const found: string[] = snapshot.corrupt.map((problem) => `${tier}: ${problem}`);
    for (const path of snapshot.rows.keys()) {
      if (!this.keys.has(path)) found.push(`${tier}: holds ${path}, which no writer wrote`);
    }
    for (const [path, key] of this.keys) {
      this.stats.keyChecks++;
      const tag = snapshot.rows.get(path)?.tag ?? ABSENT;
      if (!key.acceptable.has(tag)) {
        found.push(`${tier}: ${path} is ${tag}; acceptable: ${key.history[0]} (acknowledged or observed), then unacknowledged ${key.history.slice(1).join(", ") || "none"}`);
      }
    }
    for (const txn of this.pendingTxns) {
      if (role === "backup" && txn.backupMayBePartial) continue;
      this.stats.txnsChecked++;
      const present = [...txn.writes].filter(([path, tag]) => snapshot.rows.get(path)?.tag === tag);
      if (present.length > 0 && present.length < txn.writes.size) {
        found.push(`${tier}: unacknowledged Txn applied in part: ${present.map(([p, t]) => `${p}=${t}`).join(", ")} of ${[...txn.writes].map(([p, t]) => `${p}=${t}`).join(", ")}`);
      }
    }
    if (found.length === 0) {
      this.stats.acknowledgedChecked += this.acknowledgedSinceCheck;
      this.acknowledgedSinceCheck = 0;
    }
    this.violations.push(...found);
    return found;
  }

  /**
   * Compares primary and backup key by key (tag, version, revision). A difference is one of:
   * - `ahead`: the documented "backup ahead of a crashed primary" (contract §4.6): an
   *   unacknowledged mutation sent after the primary's state reached the backup and not the
   *   primary; no ledger record exists, so only a resync repairs it;
   * - `revisionOnly`: same value and version, another revision (a backup that missed writes while
   *   it was away and took the next one with its own revision count; see the report of issue 12);
   * - anything else: a violation (kept).
   */
  compare(primary: Snapshot, backup: Snapshot, what: string): { ahead: string[]; revisionOnly: string[]; violations: string[] } {
    const ahead: string[] = [];
    const revisionOnly: string[] = [];
    const found: string[] = [];
    const paths = new Set([...primary.rows.keys(), ...backup.rows.keys()]);
    const describe = (o: Observed | undefined): string => (o === undefined ? ABSENT : `${o.tag} (v${o.version} r${o.revision})`);
    for (const path of paths) {
      const p = primary.rows.get(path);
      const b = backup.rows.get(path);
      if (p === undefined && b === undefined) continue;
      const difference = `${path}: primary ${describe(p)}, backup ${describe(b)}`;
      if (p !== undefined && b !== undefined && p.tag === b.tag && p.version === b.version) {
        if (p.revision !== b.revision) revisionOnly.push(difference);
        continue;
      }
      // Ahead: the backup holds a state sent after the primary's (an unacknowledged mutation
      // that reached only the backup). Removes leave no trace, so an absent key may stand for
      // any of its absent states.
      const history = this.keys.get(path)?.history ?? [];
      const positions = (tag: Tag): number[] => history.flatMap((t, i) => (t === tag ? [i] : []));
      const primaryAt = Math.min(...positions(p?.tag ?? ABSENT));
      const backupAt = Math.max(...positions(b?.tag ?? ABSENT));
      if (backupAt > primaryAt) ahead.push(difference);
      else found.push(`${what}: backup differs from primary at ${difference}`);
    }
    this.violations.push(...found);
    return { ahead, revisionOnly, violations: found };
  }

  /** The server restarted and the load resumes before the ledger's replay has finished. */
  replayMayBeInterrupted(): void {
    for (const txn of this.pendingTxns) txn.backupMayBePartial = true;
  }

  /** The primary's state is now known for every key: it becomes the only acceptable one. */
  collapse(primary: Snapshot): void {
    for (const [path, key] of this.keys) this.reset(key, primary.rows.get(path)?.tag ?? ABSENT);
    this.pendingTxns = [];
  }
}
