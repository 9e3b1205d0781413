//! The tiered store (SPEC §4): routes each call to the primary, backup and ephemeral tiers and
//! orders every mutation through the versioned lock. It is itself a `KVStore`.

import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { invalidArgument, StoreError } from "../store/errors.js";
import { decodePageToken, encodePageToken } from "../store/page-token.js";
import {
  compareKeys,
  effectivePageSize,
  VersionedReads,
  type AllKeysRequest,
  type CallOptions,
  type KeyVersion,
  type VersionedValue,
  type KVStore,
  type KeyRef,
  type MutationOptions,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type RemoveOptions,
} from "../store/types.js";
import { formatPath, validateKey, validateNamespace, validateVersion } from "../store/validate.js";
import { BackupRepair, type ResyncProgress } from "./backup-repair.js";
import { EphemeralKeys } from "./ephemeral-keys.js";
import type { OwedKeys } from "./owed-keys.js";
import { HybridClock } from "./hybrid-clock.js";
import { DEFAULT_RETRY_POLICY, withRetry, type RetryPolicy } from "./retry.js";
import { VersionedLock } from "./versioned-lock.js";

export type TierName = "primary" | "backup" | "ephemeral";

/**
 * `required`: a durable mutation fails unless the backup has it too. `degraded`: when the backup
 * stays unavailable after retries, the mutation is acknowledged from the primary alone and the
 * key is recorded as owed to the backup, to be replayed when it returns.
 */
export type BackupPolicy = "required" | "degraded";

export interface BackupStatus {
  readonly configured: boolean;
  readonly policy: BackupPolicy;
  /** Keys acknowledged from the primary alone and not yet replayed to the backup. */
  readonly owedKeys: number;
  readonly divergences: number;
}

export interface TierStoreOptions {
  readonly primary: KVStore;
  /** Written with the primary, in the success path. */
  readonly backup?: KVStore;
  /** Holds the ephemeral keys; without it they are durable like any other. */
  readonly ephemeral?: KVStore;
  /** Keys routed to the ephemeral tier (`key`, `ns/key`, `ns/sub/key`); LDK Node's by default. */
  readonly ephemeralKeys?: readonly string[];
  /** Retry policy per tier; `DEFAULT_RETRY_POLICY` where absent, `NO_RETRY` to switch off. */
  readonly retry?: Partial<Record<TierName, RetryPolicy>>;
  readonly logger?: Logger;
  /** Source of server-assigned versions. */
  readonly clock?: HybridClock;
  /** `required` by default. `degraded` needs `owedKeys`. */
  readonly backupPolicy?: BackupPolicy;
  /** Where keys owed to the backup are recorded (durably: the primary's database). */
  readonly owedKeys?: OwedKeys;
  /** How often owed keys are replayed to the backup, in ms (default 1000). */
  readonly replayIntervalMs?: number;
}

/** Counters for metrics and tests. */
export interface TierStats {
  /** Mutations that succeeded in some durable tiers and failed in others. */
  divergences: number;
  /** Retries made, all tiers together. */
  retries: number;
  /** Mutations acknowledged without being applied because a newer one had been. */
  staleMutations: number;
}

interface Tier {
  readonly name: TierName;
  readonly store: KVStore;
  readonly retry: RetryPolicy;
}

/**
 * Guarantees, per SPEC §3–§4:
 * - a durable write or remove resolves only once the primary and the backup (when configured)
 *   both have it; if either fails after retries the call fails, the tiers may differ, and the
 *   divergence is logged with its key and counted;
 * - ephemeral keys live in the ephemeral tier only; reads and lists never consult the backup;
 * - mutations of one key apply in version order in every tier (stale ones are acknowledged and
 *   skipped); the version is the caller's, or assigned on arrival from a hybrid clock.
 */
export class TierStore extends VersionedReads implements KVStore {
  /** The per-key lock; its `size` is the number of keys with a mutation in flight. */
  readonly lock = new VersionedLock();
  readonly stats: TierStats = { divergences: 0, retries: 0, staleMutations: 0 };

  private readonly primary: Tier;
  private readonly backup: Tier | undefined;
  private readonly ephemeral: Tier | undefined;
  private readonly ephemeralKeys: EphemeralKeys;
  private readonly logger: Logger;
  private readonly clock: HybridClock;
  private readonly backupPolicy: BackupPolicy;
  private readonly owedKeys: OwedKeys | undefined;
  private readonly repair: BackupRepair | undefined;
  private readonly replayTimer: NodeJS.Timeout | undefined;
  private replayInFlight: Promise<void> | undefined;

  constructor(options: TierStoreOptions) {
    super();
    const tier = (name: TierName, store: KVStore | undefined): Tier | undefined =>
      store && { name, store, retry: options.retry?.[name] ?? DEFAULT_RETRY_POLICY };
    this.primary = tier("primary", options.primary)!;
    this.backup = tier("backup", options.backup);
    this.ephemeral = tier("ephemeral", options.ephemeral);
    this.ephemeralKeys = new EphemeralKeys(options.ephemeralKeys);
    this.logger = options.logger ?? silentLogger();
    this.clock = options.clock ?? new HybridClock();
    this.backupPolicy = options.backupPolicy ?? "required";
    this.owedKeys = options.owedKeys;
    if (this.backupPolicy === "degraded" && (this.backup === undefined || this.owedKeys === undefined)) {
      throw new StoreError("invalid-argument", "the degraded backup policy needs a backup tier and a record of owed keys");
    }
    const backup = this.backup;
    if (backup !== undefined) {
      this.repair = new BackupRepair({
        primary: this.primary.store,
        backup: backup.store,
        lock: this.lock,
        callPrimary: (operation) => this.call(this.primary, operation, undefined),
        callBackup: (operation) => this.call(backup, operation, undefined),
        logger: this.logger,
      });
    }
    if (this.owedKeys !== undefined && this.repair !== undefined) {
      const [owed, repair] = [this.owedKeys, this.repair];
      this.replayTimer = setInterval(() => {
        if (owed.size === 0 || this.replayInFlight !== undefined) return;
        this.replayInFlight = repair
          .replayOwed(owed)
          .then(
            () => {},
            (error: unknown) => this.logger.warn({ err: StoreError.from(error).message }, "replaying owed keys failed"),
          )
          .finally(() => (this.replayInFlight = undefined));
      }, options.replayIntervalMs ?? 1000);
      this.replayTimer.unref();
    }
  }

  private call<T>(tier: Tier, operation: (store: KVStore) => Promise<T>, deadline: number | undefined): Promise<T> {
    return withRetry(() => operation(tier.store), tier.retry, deadline, (attempt, error, delayMs) => {
      this.stats.retries++;
      this.logger.debug({ tier: tier.name, attempt, delayMs, err: error.message }, "retrying");
    });
  }

  /** The ephemeral tier when `ref` is an ephemeral key and that tier exists. */
  private ephemeralTierFor(ref: KeyRef): Tier | undefined {
    return this.ephemeral && this.ephemeralKeys.has(ref) ? this.ephemeral : undefined;
  }

  /** Ephemeral keys that `ns` can hold in the ephemeral tier (none without that tier). */
  private ephemeralKeysIn(ns: NamespaceRef): ReadonlySet<string> {
    return this.ephemeral ? this.ephemeralKeys.inNamespace(ns) : new Set();
  }

  async readVersioned(ref: KeyRef, options: CallOptions = {}): Promise<VersionedValue> {
    validateKey(ref, "read");
    const tier = this.ephemeralTierFor(ref) ?? this.primary;
    return this.call(tier, (store) => store.readVersioned(ref, options), options.deadline);
  }

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<void> {
    validateKey(ref, "write");
    validateVersion(options.version, ref, "write");
    await this.mutate("write", ref, options, (store, version) =>
      store.write(ref, value, { version, deadline: options.deadline }),
    );
  }

  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<void> {
    validateKey(ref, "remove");
    validateVersion(options.version, ref, "remove");
    await this.mutate("remove", ref, options, (store, version) =>
      store.remove(ref, { lazy: options.lazy, version, deadline: options.deadline }),
    );
  }

  private async mutate(
    operation: "write" | "remove",
    ref: KeyRef,
    options: MutationOptions,
    apply: (store: KVStore, version: bigint) => Promise<void>,
  ): Promise<void> {
    // The version is fixed on arrival, before any waiting: arrival order is issue order.
    const version = options.version ?? this.clock.next();
    const ephemeral = this.ephemeralTierFor(ref);
    const tiers = ephemeral ? [ephemeral] : this.backup ? [this.primary, this.backup] : [this.primary];
    const outcome = await this.lock.run(
      formatPath(ref),
      version,
      async () => {
        // Every tier settles before the key is released, so the next mutation of this key can
        // never overtake a slow tier.
        const results = await Promise.allSettled(
          tiers.map((tier) => this.call(tier, (store) => apply(store, version), options.deadline)),
        );
        const failed = tiers.filter((_, i) => results[i]!.status === "rejected");
        if (failed.length === 0) return;
        const backupFailure = results[tiers.indexOf(this.backup!)];
        if (failed.length === 1 && failed[0] === this.backup && this.degradesOn(backupFailure)) {
          await this.oweToBackup(operation, ref, backupFailure as PromiseRejectedResult);
          return;
        }
        if (failed.length < tiers.length) this.reportDivergence(operation, ref, version, tiers, failed);
        const firstFailure = results.find((r): r is PromiseRejectedResult => r.status === "rejected")!;
        throw StoreError.from(firstFailure.reason);
      },
      options.deadline,
    );
    if (outcome === "stale") this.stats.staleMutations++;
  }

  /** Only an unreachable backup degrades; a backup that refuses the request still fails it. */
  private degradesOn(result: PromiseSettledResult<void> | undefined): boolean {
    if (this.backupPolicy !== "degraded" || result?.status !== "rejected") return false;
    const code = StoreError.from(result.reason).code;
    return code === "unavailable" || code === "deadline-exceeded";
  }

  /** Degraded policy: acknowledge from the primary alone, once the debt is recorded durably. */
  private async oweToBackup(operation: string, ref: KeyRef, failure: PromiseRejectedResult): Promise<void> {
    await this.owedKeys!.add(ref);
    this.logger.warn(
      { key: formatPath(ref), operation, err: StoreError.from(failure.reason).message, owed: this.owedKeys!.size },
      "backup unavailable: acknowledged from the primary alone; the key is owed to the backup",
    );
  }

  /** Makes the backup equal to the primary (see `BackupRepair.resync`). */
  async resync(onProgress: (progress: ResyncProgress) => void = () => {}): Promise<ResyncProgress> {
    if (this.repair === undefined) {
      throw new StoreError("failed-precondition", "resync needs a backup tier; this server has none (--backup)");
    }
    return this.repair.resync(onProgress);
  }

  backupStatus(): BackupStatus {
    return {
      configured: this.backup !== undefined,
      policy: this.backupPolicy,
      owedKeys: this.owedKeys?.size ?? 0,
      divergences: this.stats.divergences,
    };
  }

  private reportDivergence(operation: string, ref: KeyRef, version: bigint, tiers: Tier[], failed: Tier[]): void {
    this.stats.divergences++;
    this.logger.warn(
      {
        key: formatPath(ref),
        operation,
        version: version.toString(),
        succeeded: tiers.filter((t) => !failed.includes(t)).map((t) => t.name),
        failed: failed.map((t) => t.name),
      },
      "tiers diverged: a mutation failed in some tiers after succeeding in others (repair with resync)",
    );
  }

  async list(ns: NamespaceRef, options: CallOptions = {}): Promise<string[]> {
    validateNamespace(ns, "list");
    const ephemeralKeys = this.ephemeralKeysIn(ns);
    const primaryKeys = await this.call(this.primary, (store) => store.list(ns, options), options.deadline);
    if (ephemeralKeys.size === 0) return primaryKeys;
    // Primary copies of ephemeral keys are stale (written before the ephemeral tier existed).
    const live = await this.call(this.ephemeral!, (store) => store.list(ns, options), options.deadline);
    return [...primaryKeys.filter((k) => !ephemeralKeys.has(k)), ...live.filter((k) => ephemeralKeys.has(k))];
  }

  /**
   * Pages through the primary first, then appends the ephemeral tier's keys (sorted) on the
   * primary's last page. In such namespaces the token wraps the primary's token (`p…`) or the
   * last ephemeral key returned (`e…`); elsewhere the primary's token passes through untouched.
   */
  async listPage(ns: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    validateNamespace(ns, "list");
    const ephemeralKeys = this.ephemeralKeysIn(ns);
    if (ephemeralKeys.size === 0) {
      return this.call(this.primary, (store) => store.listPage(ns, page), page.deadline);
    }
    const size = effectivePageSize(page.pageSize);
    const position = page.pageToken ? decodePageToken(ns, page.pageToken) : "p";
    if (position.startsWith("e")) return this.ephemeralPage(ns, ephemeralKeys, [], position.slice(1), size, page);
    if (!position.startsWith("p")) throw invalidArgument(`Failed to list ${formatPath(ns)}: malformed page_token`);

    const primaryPage = await this.call(
      this.primary,
      (store) => store.listPage(ns, { pageSize: size, pageToken: position.slice(1), deadline: page.deadline }),
      page.deadline,
    );
    const keys = primaryPage.keys.filter((k) => !ephemeralKeys.has(k));
    if (primaryPage.nextPageToken !== "") {
      return { keys, nextPageToken: encodePageToken(ns, `p${primaryPage.nextPageToken}`) };
    }
    return this.ephemeralPage(ns, ephemeralKeys, keys, "", size, page);
  }

  /** `head` followed by the live ephemeral keys after `afterKey`, up to `size` keys in all. */
  private async ephemeralPage(
    ns: NamespaceRef,
    ephemeralKeys: ReadonlySet<string>,
    head: string[],
    afterKey: string,
    size: number,
    options: CallOptions,
  ): Promise<Page> {
    const live = await this.call(this.ephemeral!, (store) => store.list(ns, options), options.deadline);
    const remaining = live.filter((k) => ephemeralKeys.has(k) && k > afterKey).sort();
    const tail = remaining.slice(0, Math.max(0, size - head.length));
    const last = tail.at(-1) ?? afterKey;
    const more = tail.length < remaining.length;
    return { keys: [...head, ...tail], nextPageToken: more ? encodePageToken(ns, `e${last}`) : "" };
  }

  /**
   * The keys a read would find: the primary's (minus ephemeral keys when an ephemeral tier holds
   * them) merged with the ephemeral tier's, in (primary, secondary, key) order.
   */
  async listAllKeys(request: AllKeysRequest = {}): Promise<KeyVersion[]> {
    const limit = effectivePageSize(request.limit);
    const fromTier = async (tier: Tier, keep: (key: KeyVersion) => boolean): Promise<KeyVersion[]> => {
      // Filtering can thin a page: keep fetching until `limit` keys are kept or the tier ends.
      const kept: KeyVersion[] = [];
      let after = request.after;
      for (;;) {
        const page = await this.call(tier, (store) => store.listAllKeys({ ...request, after, limit }), request.deadline);
        kept.push(...page.filter(keep));
        if (page.length < limit || kept.length >= limit) return kept;
        after = page.at(-1);
      }
    };
    const routedToEphemeral = (key: KeyRef): boolean => this.ephemeralTierFor(key) !== undefined;
    const durable = await fromTier(this.primary, (key) => !routedToEphemeral(key));
    const ephemeral = this.ephemeral ? await fromTier(this.ephemeral, routedToEphemeral) : [];
    return [...durable, ...ephemeral].sort(compareKeys).slice(0, limit);
  }

  async close(): Promise<void> {
    clearInterval(this.replayTimer);
    await this.replayInFlight;
    await Promise.all([this.primary, this.backup, this.ephemeral].map((tier) => tier?.store.close()));
    await this.owedKeys?.close();
  }
}
