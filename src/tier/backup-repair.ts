//! Making the backup tier equal to the primary: one key at a time under the versioned lock, for
//! a full resync and for replaying keys owed under the degraded policy.

import type { Logger } from "../log.js";
import { StoreError } from "../store/errors.js";
import { scanAllKeys } from "../store/scan.js";
import { compareKeys, type KVStore, type KeyRef, type KeyVersion, type VersionedValue } from "../store/types.js";
import { formatPath } from "../store/validate.js";
import type { OwedKeys } from "./owed-keys.js";
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
  readonly primary: KVStore;
  readonly backup: KVStore;
  readonly lock: VersionedLock;
  /** Calls a tier with that tier's retry policy. */
  readonly callPrimary: <T>(operation: (store: KVStore) => Promise<T>) => Promise<T>;
  readonly callBackup: <T>(operation: (store: KVStore) => Promise<T>) => Promise<T>;
  readonly logger: Logger;
}

async function readOrAbsent(call: BackupRepairDeps["callPrimary"], ref: KeyRef): Promise<VersionedValue | undefined> {
  try {
    return await call((store) => store.readVersioned(ref));
  } catch (error) {
    if (error instanceof StoreError && error.code === "not-found") return undefined;
    throw error;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export class BackupRepair {
  constructor(private readonly deps: BackupRepairDeps) {}

  /**
   * Makes the backup's copy of `ref` equal to the primary's, holding the key's lock so no
   * mutation of it runs meanwhile (and none is lost: mutations wait their turn).
   */
  repairKey(ref: KeyRef): Promise<RepairOutcome> {
    const { lock, callPrimary, callBackup } = this.deps;
    return lock.exclusive(formatPath(ref), async () => {
      const [primary, backup] = await Promise.all([readOrAbsent(callPrimary, ref), readOrAbsent(callBackup, ref)]);
      if (primary === undefined) {
        if (backup === undefined) return "unchanged";
        await callBackup((store) => store.remove(ref));
        return "removed";
      }
      if (backup !== undefined) {
        const sameVersion = backup.version === primary.version;
        if (sameVersion && (primary.version !== 0n || sameBytes(backup.value, primary.value))) return "unchanged";
        // A backup copy at the same or a newer version would make the versioned write below a
        // no-op: clear it first (the key's lock keeps everyone else out meanwhile).
        if (backup.version >= primary.version) await callBackup((store) => store.remove(ref));
      }
      const version = primary.version === 0n ? undefined : primary.version;
      await callBackup((store) => store.write(ref, primary.value, { version }));
      return "copied";
    });
  }

  /**
   * Walks primary and backup together in key order and repairs every key that is missing,
   * different (by version) or extra in the backup. Safe while writes go on: each repair holds
   * the key's lock, and writes made meanwhile reach both tiers anyway.
   */
  async resync(onProgress: (progress: ResyncProgress) => void): Promise<ResyncProgress> {
    const { primary, backup } = this.deps;
    let primaryKeys = 0;
    for await (const _ of scanAllKeys(primary)) primaryKeys++;
    const progress: ResyncProgress = { scanned: 0, copied: 0, removed: 0, unchanged: 0, primaryKeys, primaryScanned: 0 };

    const primaryScan = scanAllKeys(primary)[Symbol.asyncIterator]();
    const backupScan = scanAllKeys(backup)[Symbol.asyncIterator]();
    const next = async (scan: AsyncIterator<KeyVersion>): Promise<KeyVersion | undefined> => {
      const result = await scan.next();
      return result.done ? undefined : result.value;
    };
    let p = await next(primaryScan);
    let b = await next(backupScan);
    while (p !== undefined || b !== undefined) {
      const order = p === undefined ? 1 : b === undefined ? -1 : compareKeys(p, b);
      let outcome: RepairOutcome;
      if (order === 0 && p!.version === b!.version && p!.version !== 0n) outcome = "unchanged";
      else outcome = await this.repairKey(order <= 0 ? p! : b!);
      progress[outcome]++;
      progress.scanned++;
      if (order <= 0) {
        progress.primaryScanned++;
        p = await next(primaryScan);
      }
      if (order >= 0) b = await next(backupScan);
      onProgress(progress);
    }
    this.deps.logger.info({ ...progress }, "resync done");
    return progress;
  }

  /**
   * Replays every owed key to the backup and forgets those that made it. Stops at the first
   * failure (the backup is likely still away) and resolves with the number replayed.
   */
  async replayOwed(owed: OwedKeys): Promise<number> {
    let replayed = 0;
    for await (const ref of owed.keys()) {
      try {
        await this.repairKey(ref);
      } catch (error) {
        this.deps.logger.debug({ key: formatPath(ref), err: (error as Error).message }, "replay to backup failed; will retry");
        break;
      }
      await owed.settle(ref);
      replayed++;
    }
    if (replayed > 0) this.deps.logger.info({ replayed, owed: owed.size }, "replayed owed keys to the backup");
    return replayed;
  }
}
