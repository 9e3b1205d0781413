//! The AdminService handlers: resync of the backup (streaming progress), backup status, store
//! usage, and snapshots of the primary (streaming the file).

import { AdminService, type FollowerStatusSchema, type ResyncResponse } from "../../gen/tierkv/v1/admin_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "../rpc/service-definition.js";
import { authorizedAdmin } from "../auth/authorized-store.js";
import { RESYNC_PROGRESS_INTERVAL_MS } from "../limits.js";
import { StoreError } from "../store/errors.js";
import { snapshotParts } from "../store/snapshot.js";
import type { SnapshotSource, StoreUsage } from "../store/types.js";
import type { ResyncProgress } from "../tier/backup-repair.js";
import type { BackupStatus } from "../tier/tier-store.js";
import type { FollowerStatus } from "../follow/follower.js";

/** What the admin service needs from the store: the tiered store provides both. */
export interface AdminOperations {
  /** One at a time (the store refuses a second with failed-precondition); stops when `signal` aborts. */
  resync(onProgress: (progress: ResyncProgress) => void, signal?: AbortSignal): Promise<ResyncProgress>;
  backupStatus(): Promise<BackupStatus>;
  storeUsage(storeId: string): Promise<StoreUsage>;
  recountUsage(storeId: string): Promise<{ recorded: StoreUsage; counted: StoreUsage }>;
  /** The primary as a snapshot source; throws failed-precondition when it cannot be one. */
  snapshotSource(): SnapshotSource;
}


function progressMessage(progress: ResyncProgress, done: boolean): MessageInitShape<typeof AdminService.method.resync.output> {
  return {
    scanned: BigInt(progress.scanned),
    copied: BigInt(progress.copied),
    removed: BigInt(progress.removed),
    unchanged: BigInt(progress.unchanged),
    primaryKeys: BigInt(progress.primaryKeys),
    primaryScanned: BigInt(progress.primaryScanned),
    done,
  } satisfies Partial<ResyncResponse>;
}

function followerMessage(status: FollowerStatus): MessageInitShape<typeof FollowerStatusSchema> {
  return {
    ...status,
    lagChanges: BigInt(status.lagChanges),
    appliedChanges: BigInt(status.appliedChanges),
    fullCopies: BigInt(status.fullCopies),
  };
}

/** `follower`: on a follower, its status joins BackupStatus. */
export function adminService(tiers: AdminOperations, follower?: { status(): FollowerStatus }): ServiceImpl<typeof AdminService> {
  /** The operations for the caller, authorized where every access is (`AuthorizedStore`'s file). */
  const operationsFor = (principal: HandlerContext["principal"]): AdminOperations => authorizedAdmin(tiers, principal);
  return {
    // A caller that goes away cancels the resync: stopping half-way is safe (every key repaired
    // so far stays repaired), and a resync nobody watches should not hold the backup busy.
    async *resync(_request, context) {
      const operations = operationsFor(context.principal);
      let latest: ResyncProgress | undefined;
      const run = operations.resync((progress) => (latest = progress), context.signal);
      let final: ResyncProgress | undefined;
      let failure: unknown;
      const settled = run.then(
        (result) => void (final = result),
        (error: unknown) => void (failure = error ?? new Error("resync failed")),
      );
      while (final === undefined && failure === undefined) {
        await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, RESYNC_PROGRESS_INTERVAL_MS))]);
        if (failure !== undefined) throw failure;
        if (latest !== undefined && final === undefined) yield progressMessage(latest, false);
      }
      yield progressMessage(final!, true);
    },

    async storeUsage(request, context) {
      const operations = operationsFor(context.principal);
      if (request.storeId === "") throw new StoreError("invalid-argument", "StoreUsage needs a store_id");
      if (!request.recount) {
        const usage = await operations.storeUsage(request.storeId);
        return { storeId: request.storeId, keys: BigInt(usage.keys), bytes: BigInt(usage.bytes) };
      }
      const { recorded, counted } = await operations.recountUsage(request.storeId);
      return {
        storeId: request.storeId,
        keys: BigInt(counted.keys),
        bytes: BigInt(counted.bytes),
        driftKeys: BigInt(recorded.keys - counted.keys),
        driftBytes: BigInt(recorded.bytes - counted.bytes),
      };
    },

    // A caller that goes away stops the snapshot and its temporary file is removed.
    async *snapshot(_request, context) {
      const operations = operationsFor(context.principal);
      for await (const part of snapshotParts(operations.snapshotSource(), context.signal)) {
        if (part.kind === "chunk") {
          yield { part: { case: "chunk", value: part.bytes } };
        } else {
          const stores = part.stores.map((store) => ({ storeId: store.storeId, keys: BigInt(store.keys), valueBytes: BigInt(store.bytes) }));
          yield { part: { case: "summary", value: { sha256: part.sha256, fileBytes: BigInt(part.fileBytes), stores } } };
        }
      }
    },

    async backupStatus(_request, context) {
      const operations = operationsFor(context.principal);
      const status = await operations.backupStatus();
      return {
        configured: status.configured,
        policy: status.policy,
        owedKeys: BigInt(status.owedKeys),
        divergences: BigInt(status.divergences),
        state: status.state,
        transitions: BigInt(status.transitions),
        downMs: BigInt(Math.round(status.downMs)),
        timeLimitMs: BigInt(status.timeLimitMs),
        lastStopClean: status.lastStopClean,
        healing: status.healing,
        heals: BigInt(status.heals),
        ...(follower !== undefined && { follower: followerMessage(follower.status()) }),
      };
    },
  };
}
