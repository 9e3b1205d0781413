//! Making the backup tier equal to the primary: one key at a time under the versioned lock, for
//! a full resync and for replaying the keys the primary's ledger says the backup owes.

import { LEDGER_REPLAY_PAGE, RESYNC_WINDOW, TIER_TRANSFER_BYTES_PER_MS } from "../limits.js";
import type { Logger } from "../log.js";
import { StoreError } from "../store/errors.js";
import { readOrAbsent } from "../store/read-or-absent.js";
import { scanAllKeys } from "../store/scan.js";
import { compareKeys, type BackupLedger, type KeyRef, type KeyVersion, type VersionedValue } from "../store/types.js";
import { formatPath } from "../store/validate.js";
import type { Tier } from "./tier.js";
import type { VersionedLock } from "./versioned-lock.js";

export type RepairOutcome = "copied" | "removed" | "unchanged";

export interface ResyncProgress {
  /** Keys of the primary and the backup examined so far. */
  scanned: number;
  copied: number;
  removed: number;
  unchanged: number;
  /** Keys the primary held at the start, and how many of them have been passed. */
  primaryKeys: number;
  primaryScanned: number;
}

export interface BackupRepairDeps {
  readonly primary: Tier;
  readonly backup: Tier;
  readonly lock: VersionedLock;
  /** The lock's name for a key (store id and path). */
  readonly lockKey: (ref: KeyRef) => string;
  readonly logger: Logger;
}

/**
 * Repairs run even while the backup is marked down (contract §4.12): they are what brings it
 * back up, and the operator's resync asks for them explicitly. Their callers decide when to run.
 * Their copies ignore versions, so they are never abandoned at the tier's adaptive time limit
 * (a late copy would undo a newer write).
 */
const REPAIR_CALL = { force: true, unversioned: true } as const;

/** `ref` in `tier` (with the tier's retries), or undefined when absent. */
function readFrom(tier: Tier, ref: KeyRef): Promise<VersionedValue | undefined> {
  return tier.call((store, deadline) => readOrAbsent(store, ref, { deadline }), undefined, REPAIR_CALL);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function cancelledError(): StoreError {
  return new StoreError("cancelled", "the resync was cancelled; the backup is partly repaired (run it again)");
}

export class BackupRepair {
  constructor(private readonly deps: BackupRepairDeps) {}

  /**
   * Makes the backup's copy of `ref` equal to the primary's, holding the key's lock so no
   * mutation of it runs meanwhile (and none is lost: mutations wait their turn). The backup never
   * ends with less than it had: the copy overwrites in place (exact version and revision), and a
   * key is removed only when the primary really lacks it.
   */
  repairKey(ref: KeyRef): Promise<RepairOutcome> {
    const { lock, primary, backup } = this.deps;
    return lock.exclusive([this.deps.lockKey(ref)], async () => {
      const [source, copy] = await Promise.all([readFrom(primary, ref), readFrom(backup, ref)]);
      if (source === undefined) {
        if (copy === undefined) return "unchanged";
        await backup.call((store, deadline) => store.remove(ref, { deadline }), undefined, REPAIR_CALL);
        return "removed";
      }
      if (
        copy !== undefined &&
        copy.version === source.version &&
        copy.revision === source.revision &&
        (source.version !== 0n || sameBytes(copy.value, source.value))
      ) {
        return "unchanged";
      }
      await backup.call(
        (store, deadline) => store.write(ref, source.value, { exact: true, version: source.version, revision: source.revision, deadline }),
        undefined,
        { ...REPAIR_CALL, extraMs: transferAllowanceMs(source.value.byteLength) },
      );
      return "copied";
    });
  }

  /**
   * Walks primary and backup together in key order (every store) and repairs every key that is
   * missing, different or extra in the backup. Safe while writes go on: each repair holds the
   * key's lock, and writes made meanwhile reach both tiers anyway. Stops when `signal` aborts.
   */
  async resync(onProgress: (progress: ResyncProgress) => void, signal: AbortSignal): Promise<ResyncProgress> {
    const { primary, backup } = this.deps;
    let primaryKeys = 0;
    for await (const _ of scanAllKeys(primary.store, { allStores: true })) {
      if (signal.aborted) throw cancelledError();
      primaryKeys++;
    }
    const progress: ResyncProgress = { scanned: 0, copied: 0, removed: 0, unchanged: 0, primaryKeys, primaryScanned: 0 };

    const primaryScan = scanAllKeys(primary.store, { allStores: true })[Symbol.asyncIterator]();
    const backupScan = scanAllKeys(backup.store, { allStores: true })[Symbol.asyncIterator]();
    const next = async (scan: AsyncIterator<KeyVersion>): Promise<KeyVersion | undefined> => {
      const result = await scan.next();
      return result.done ? undefined : result.value;
    };
    // Keys are repaired RESYNC_WINDOW at a time (distinct keys never wait for each other), so
    // the copies to a remote backup travel in batches instead of one round trip per key.
    const running = new Set<Promise<void>>();
    let failure: unknown;
    const repair = (ref: KeyRef): void => {
      const task = this.repairKey(ref).then(
        (outcome) => {
          progress[outcome]++;
          onProgress(progress);
        },
        (error: unknown) => void (failure ??= error),
      );
      running.add(task);
      void task.finally(() => running.delete(task));
    };
    let p = await next(primaryScan);
    let b = await next(backupScan);
    while ((p !== undefined || b !== undefined) && failure === undefined) {
      if (signal.aborted) break;
      const order = p === undefined ? 1 : b === undefined ? -1 : compareKeys(p, b);
      progress.scanned++;
      if (order === 0 && p!.version === b!.version && p!.revision === b!.revision && p!.version !== 0n) {
        progress.unchanged++;
        onProgress(progress);
      } else {
        repair(order <= 0 ? p! : b!);
        if (running.size >= RESYNC_WINDOW) await Promise.race(running);
      }
      if (order <= 0) {
        progress.primaryScanned++;
        p = await next(primaryScan);
      }
      if (order >= 0) b = await next(backupScan);
    }
    await Promise.all(running);
    if (failure !== undefined) throw failure;
    if (signal.aborted) throw cancelledError();
    this.deps.logger.info({ ...progress }, "resync done");
    return progress;
  }

  /**
   * Replays every key the ledger says the backup owes and settles those that made it. Stops at
   * the first failure (the backup is likely still away) and resolves with the number replayed.
   * A failure to read the ledger itself is thrown, never taken for "nothing owed".
   */
  async replayOwed(ledger: BackupLedger, signal: AbortSignal): Promise<number> {
    let replayed = 0;
    let after: KeyRef | undefined;
    for (;;) {
      const owed = await ledger.listOwed(LEDGER_REPLAY_PAGE, after);
      for (const entry of owed) {
        if (signal.aborted) return replayed;
        try {
          await this.repairKey(entry);
        } catch (error) {
          this.deps.logger.debug({ key: formatPath(entry), err: StoreError.from(error).message }, "replay to backup failed; will retry");
          return replayed;
        }
        // Settles only the version recorded; a newer mutation of the key keeps its own record.
        await ledger.settleOwed(entry, entry.version);
        replayed++;
      }
      if (owed.length < LEDGER_REPLAY_PAGE) break;
      after = owed.at(-1);
    }
    if (replayed > 0) this.deps.logger.info({ replayed }, "replayed owed keys to the backup");
    return replayed;
  }
}

/** Time a value's bytes add to a tier call's limit (1 ms per 10 KiB … ~100 ms per MiB). */
export function transferAllowanceMs(bytes: number): number {
  return Math.ceil(bytes / TIER_TRANSFER_BYTES_PER_MS);
}
