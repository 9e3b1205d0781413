//! The tiered store (contract §4): routes each call to the primary, backup and ephemeral tiers
//! and orders every mutation through the versioned lock. It is itself a `KVStore`, and it owns
//! the background work on its tiers (replay of owed keys, resync) until `close()`.

import { DEFAULT_TIER_HEALTH, effectivePageSize, HEAL_RETRY_MS, LEDGER_REPLAY_INTERVAL_MS, TIER_STARTUP_CHECK_MS } from "../limits.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { invalidArgument, StoreError } from "../store/errors.js";
import { decodePageToken, encodeKeyCursor, encodePageToken } from "../store/page-token.js";
import { readOrAbsent, stateOrAbsent } from "../store/read-or-absent.js";
import {
  compareKeys,
  isBackupLedger,
  isChangeLog,
  isStateReporter,
  isStoreUsageReader,
  isSnapshotSource,
  storeIdOf,
  VersionedReads,
  type AllKeysPage,
  type AllKeysRequest,
  type BackupLedger,
  type CallOptions,
  type ChangeLog,
  type KVStore,
  type KeyRef,
  type KeyState,
  type KeyVersion,
  type GroupUsage,
  type ListOptions,
  type MutationOptions,
  type MutationOutcome,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type RemoveOptions,
  type Quota,
  type SnapshotSource,
  type StoreUsage,
  type StoreUsageReader,
  type TxnOperation,
  type TxnRequest,
  type TxnResult,
  type VersionedValue,
} from "../store/types.js";
import { VSS_STORE_PREFIX } from "../store/names.js";
import { formatPath, reorderedBatch, validKey, validNamespace, validTxn, validateVersion } from "../store/validate.js";
import { BackupRepair, transferAllowanceMs, type ResyncProgress } from "./backup-repair.js";
import { backupPolicy, type BackupPolicy, type BackupPolicyName } from "./backup-policy.js";
import { EphemeralKeys } from "./ephemeral-keys.js";
import { HybridClock } from "./hybrid-clock.js";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry.js";
import { Tier, tierFailure, type TierName } from "./tier.js";
import { CircuitBreaker, causeOf, LatencyWindow, type BreakerState, type BreakerTransition, type TierHealthPolicy } from "./tier-health.js";
import { VersionedLock } from "./versioned-lock.js";
import { SeenQuotas } from "./quotas.js";

export type { TierName } from "./tier.js";
export type { BackupPolicyName as BackupPolicy } from "./backup-policy.js";
export type { TierHealthPolicy } from "./tier-health.js";

/** A tier's breaker and time limit, for metrics and backup-status (contract §4.12). */
export interface TierCondition {
  readonly state: BreakerState;
  /** Transitions up → down and down → up since the process started. */
  readonly transitions: number;
  /** Time spent down since the process started, the current spell included. */
  readonly downMs: number;
  /** The time limit a call's attempt gets now, and the recent p99 it comes from. */
  readonly timeLimitMs: number;
  readonly p99Ms?: number;
}

/** Whether the last stop was clean, and how to record the next clean one (contract §4.13). */
export interface LastStop {
  readonly clean: boolean;
  /** Called by `close()` once every tier is closed and nothing is left to heal. */
  markClean(): Promise<void>;
}

export interface BackupStatus {
  readonly configured: boolean;
  readonly policy: BackupPolicyName;
  /** Keys the primary's ledger says the backup lacks (owed, or not yet confirmed after a crash). */
  readonly owedKeys: number;
  readonly divergences: number;
  /** The backup's breaker: up or down (`up` without a backup). */
  readonly state: BreakerState;
  readonly transitions: number;
  readonly downMs: number;
  readonly timeLimitMs: number;
  /** Whether this process found its previous stop clean (true when it cannot tell: no marker). */
  readonly lastStopClean: boolean;
  /** True while the server heals the backup after an unclean stop (replay + resync). */
  readonly healing: boolean;
  /** Heals started since the process started (0 or 1). */
  readonly heals: number;
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
  /** Source of the versions proposed for mutations without a caller version. */
  readonly clock?: HybridClock;
  /** `required` by default. `degraded` needs a primary that keeps a ledger (sqlite:, memory:). */
  readonly backupPolicy?: BackupPolicyName;
  /** How often keys owed to the backup are replayed, in ms (default 1000). */
  readonly replayIntervalMs?: number;
  /**
   * Adaptive time limits and a circuit breaker for every tier (contract §4.12); the defaults
   * (`DEFAULT_TIER_HEALTH`) for fields left out. Absent: neither (calls wait as long as the backend).
   */
  readonly health?: Partial<TierHealthPolicy>;
  /** Whether the last stop was clean; after an unclean one the backup is healed (contract §4.13). */
  readonly lastStop?: LastStop;
}

/** Counters for metrics and tests (a copy: reading it touches nothing inside the store). */
export interface TierSnapshot {
  /** Mutations that succeeded in some durable tiers and failed in others. */
  readonly divergences: number;
  /** Retries made, all tiers together. */
  readonly retries: number;
  /** Mutations acknowledged without being applied because a newer one had been. */
  readonly staleMutations: number;
  /** Keys with a mutation in flight (entries of the versioned lock). */
  readonly inFlightKeys: number;
  /** Calls that failed for a tier's own reasons (after retries), per configured tier. */
  readonly tierFailures: Readonly<Partial<Record<TierName, number>>>;
  readonly resyncRunning: boolean;
  /** The running resync's progress, or the last one's; undefined before the first reports any. */
  readonly resync?: Readonly<ResyncProgress>;
  /** Breaker and time limit per configured tier (only with `health`). */
  readonly tiers: Readonly<Partial<Record<TierName, TierCondition>>>;
  /** Durable mutations acknowledged without trying the backup because it was down. */
  readonly skippedBackupWrites: number;
  readonly lastStopClean: boolean;
  readonly healing: boolean;
  readonly heals: number;
}

/** Attempts of a plain mutation with a backup when another instance keeps writing its key. */
const PLAIN_ATTEMPTS = 5;

function isVssStore(ref: NamespaceRef): boolean {
  return storeIdOf(ref).startsWith(VSS_STORE_PREFIX);
}

/** The lock's name for a key: keys of different stores never share a turn. */
function lockKey(ref: KeyRef): string {
  return `${storeIdOf(ref)}\0${formatPath(ref)}`;
}

/**
 * Guarantees, per contract §3–§4:
 * - a durable write or remove resolves only once the primary and the backup (when configured)
 *   both have it, or (degraded policy) once the primary has it together with a durable record
 *   that the backup owes it; a failure says which tier failed and whether another applied it;
 * - the primary records every mutation the backup has not confirmed (its ledger), in the same
 *   commit, so a crash between the two leaves a record that is replayed, not a silent difference;
 * - ephemeral keys live in the ephemeral tier only; reads and lists never consult the backup;
 * - mutations of one key apply in version order in every tier (stale ones are acknowledged and
 *   reported as stale); the version is the caller's (within the clock's skew), or assigned on
 *   arrival from a hybrid logical clock seeded from the primary.
 */
export class TierStore extends VersionedReads implements KVStore, StoreUsageReader {
  private readonly lock = new VersionedLock();
  private readonly quotas = new SeenQuotas();
  private readonly counts = { divergences: 0, retries: 0, staleMutations: 0, skippedBackupWrites: 0 };
  private readonly tierFailures: Partial<Record<TierName, number>> = {};
  private lastResync: ResyncProgress | undefined;
  private readonly primary: Tier;
  private readonly backup: Tier | undefined;
  private readonly ephemeral: Tier | undefined;
  private readonly ephemeralKeys: EphemeralKeys;
  private readonly logger: Logger;
  private readonly clock: HybridClock;
  private readonly policy: BackupPolicy;
  private readonly healthPolicy: TierHealthPolicy | undefined;
  /** The primary's record of what the backup lacks; only with a backup and a primary that keeps one. */
  private readonly ledger: BackupLedger | undefined;
  private readonly repair: BackupRepair | undefined;
  /** Aborted by `close()`: stops replay and resync. */
  private readonly stopping = new AbortController();
  private readonly replayTimer: NodeJS.Timeout | undefined;
  private replayRun: Promise<void> | undefined;
  private resyncRun: Promise<ResyncProgress> | undefined;
  private closed = false;
  private readonly healthListeners: Array<(serving: boolean) => void> = [];
  private lastServing = true;
  private readonly probes = new Set<Promise<void>>();
  private readonly lastStop: LastStop | undefined;
  private healing = false;
  private heals = 0;
  private healRun: Promise<void> | undefined;

  constructor(options: TierStoreOptions) {
    super();
    const onRetry = (tier: TierName, attempt: number, error: StoreError, delayMs: number): void => {
      this.counts.retries++;
      this.logger.debug({ tier, attempt, delayMs, err: error.message }, "retrying");
    };
    const onFailure = (tier: TierName, error: unknown): void => {
      this.tierFailures[tier] = (this.tierFailures[tier] ?? 0) + 1;
      // The real cause (TLS, DNS, refused connection or credentials) is for the operator; once
      // the tier is down, its breaker's transition line has said it.
      // A caller that went away (cancelled) says nothing about the tier.
      if (StoreError.from(error).code === "cancelled" || this.tiers().some((t) => t.name === tier && t.down)) return;
      this.logger.warn({ tier, err: causeOf(error) }, "tier call failed");
    };
    const policy: TierHealthPolicy | undefined = options.health && { ...DEFAULT_TIER_HEALTH, ...options.health };
    const tier = (name: TierName, store: KVStore | undefined): Tier | undefined => {
      if (store === undefined) return undefined;
      // Zero from the start, so a dashboard shows a configured tier that never failed.
      this.tierFailures[name] = 0;
      const health = policy && {
        latency: new LatencyWindow(policy),
        breaker: new CircuitBreaker(policy, (transition) => this.transitioned(name, transition)),
      };
      return new Tier(name, store, options.retry?.[name] ?? DEFAULT_RETRY_POLICY, onRetry, onFailure, health);
    };
    this.healthPolicy = policy;
    this.lastStop = options.lastStop;
    this.primary = tier("primary", options.primary)!;
    this.backup = tier("backup", options.backup);
    this.ephemeral = tier("ephemeral", options.ephemeral);
    this.ephemeralKeys = new EphemeralKeys(options.ephemeralKeys);
    this.logger = options.logger ?? silentLogger();
    this.clock = options.clock ?? new HybridClock();
    this.policy = backupPolicy(options.backupPolicy ?? "required");
    this.ledger = this.backup !== undefined && isBackupLedger(options.primary) ? options.primary : undefined;
    if (this.policy.name === "degraded" && this.ledger === undefined) {
      throw invalidArgument("the degraded backup policy needs a backup tier and a primary that records owed keys (sqlite:, postgres: or memory:)");
    }
    if (this.backup !== undefined) {
      this.repair = new BackupRepair({ primary: this.primary, backup: this.backup, lock: this.lock, lockKey, logger: this.logger });
    }
    if (this.ledger !== undefined) {
      this.replayTimer = setInterval(() => this.replayOwed(), options.replayIntervalMs ?? LEDGER_REPLAY_INTERVAL_MS);
      this.replayTimer.unref();
    }
  }

  /** Counters and the lock's size, for metrics. */
  snapshot(): TierSnapshot {
    return {
      ...this.counts,
      inFlightKeys: this.lock.size,
      tierFailures: { ...this.tierFailures },
      resyncRunning: this.resyncRun !== undefined,
      ...(this.lastResync !== undefined && { resync: { ...this.lastResync } }),
      tiers: Object.fromEntries(this.tiers().flatMap((tier) => (tier.health ? [[tier.name, this.conditionOf(tier)]] : []))),
      lastStopClean: this.lastStop?.clean ?? true,
      healing: this.healing,
      heals: this.heals,
    };
  }

  private tiers(): Tier[] {
    return [this.primary, this.backup, this.ephemeral].filter((tier): tier is Tier => tier !== undefined);
  }

  private conditionOf(tier: Tier): TierCondition {
    const { breaker, latency } = tier.health!;
    const p99 = latency.p99;
    return {
      state: breaker.state,
      transitions: breaker.transitions,
      downMs: breaker.downMs,
      timeLimitMs: latency.limitMs,
      ...(p99 !== undefined && { p99Ms: Math.round(p99 * 10) / 10 }),
    };
  }

  /**
   * Whether `KVStoreService` can serve: not while the primary is down, nor while a required
   * backup is (a load balancer then drains this instance).
   */
  get serving(): boolean {
    return !this.primary.down && !(this.policy.name === "required" && this.backup?.down === true);
  }

  /** Tells `listener` each time `serving` changes (the server's health status). */
  onHealthChange(listener: (serving: boolean) => void): void {
    this.healthListeners.push(listener);
  }

  /**
   * A durable mutation while the backup is down and may not be skipped (required, or no ledger)
   * fails at once, before waiting for its key's turn or touching the primary (§4.12).
   */
  private refuseWhileBackupDown(ref: KeyRef): void {
    const backup = this.backup;
    if (backup?.down !== true || (this.ledger !== undefined && this.policy.name === "degraded")) return;
    if (this.ephemeralTierFor(ref) !== undefined) return;
    throw tierFailure("backup", tierDownError(backup));
  }

  /** One log line per breaker transition, with its cause; a tier that went down is probed. */
  private transitioned(name: TierName, transition: BreakerTransition): void {
    if (transition.to === "down") {
      const what =
        name !== "backup"
          ? "its calls fail at once"
          : this.policy.name === "degraded"
            ? "writes skip it and are owed to it"
            : "writes fail at once";
      this.logger.warn({ tier: name, cause: transition.cause }, `tier down (circuit open): ${what} until a probe answers`);
      const tier = this.tiers().find((t) => t.name === name)!;
      const probe = this.probe(tier).finally(() => this.probes.delete(probe));
      this.probes.add(probe);
    } else {
      this.logger.info({ tier: name, cause: transition.cause, downMs: transition.downMs }, "tier up (circuit closed)");
    }
    const serving = this.serving;
    if (serving !== this.lastServing) {
      this.lastServing = serving;
      for (const listener of this.healthListeners) listener(serving);
    }
  }

  /**
   * Tries a tier that is down, with exponential backoff and jitter, until it answers; then
   * replays what the backup is owed and marks the tier up (a failed replay keeps it down).
   */
  private async probe(tier: Tier): Promise<void> {
    const policy = this.healthPolicy!;
    let bound = policy.probeInitialDelayMs;
    while (!this.closed && tier.down) {
      await sleepUnlessStopped(bound / 2 + (Math.random() * bound) / 2, this.stopping.signal);
      if (this.closed) return;
      bound = Math.min(policy.probeMaxDelayMs, bound * 2);
      try {
        await this.tryTier(tier, probeLimitMs(tier));
      } catch (error) {
        tier.health!.breaker.lastCause = causeOf(error);
        this.logger.debug({ tier: tier.name, err: causeOf(error), nextProbeMs: bound }, "tier still down");
        continue;
      }
      // Up at once, so writes reach it again and the debt stops growing; the debt is replayed
      // now (and by every replay tick until it is paid).
      const owed = tier === this.backup && this.ledger !== undefined;
      tier.health!.breaker.close(owed ? "a probe answered; replaying the owed keys" : "a probe answered");
      if (owed) this.replayOwed();
    }
  }

  /** One read of an absent key, bounded by `limitMs`: the tier answers or says why not. */
  private async tryTier(tier: Tier, limitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = Date.now() + limitMs;
    const read = readOrAbsent(tier.store, PROBE_KEY, { deadline });
    read.catch(() => {});
    try {
      await Promise.race([
        read,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new StoreError("deadline-exceeded", `no answer within ${limitMs} ms`)), limitMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Tries every tier once (contract §4.12, at start): a tier that does not answer is logged at
   * warn with its real cause and marked down (probed until it answers). Then, after an unclean
   * stop, starts healing the backup in the background.
   */
  async checkTiers(): Promise<void> {
    await Promise.all(
      this.tiers().map(async (tier) => {
        try {
          await this.tryTier(tier, TIER_STARTUP_CHECK_MS);
        } catch (error) {
          const cause = causeOf(error);
          this.logger.warn({ tier: tier.name, err: cause }, "tier did not answer at start");
          tier.health?.breaker.open(`start-up check: ${cause}`);
        }
      }),
    );
    if (this.lastStop !== undefined && !this.lastStop.clean && this.repair !== undefined) this.startHealing();
  }

  /**
   * After an unclean stop the backup may hold mutations the primary never committed (§4.2) and
   * lack ones it did: the owed keys are replayed (the regular replay) and a resync runs in the
   * background while serving, again until one completes.
   */
  private startHealing(): void {
    this.healing = true;
    this.heals++;
    this.logger.warn("the last stop was not clean: healing the backup in the background (owed keys replayed, then a resync)");
    const run = async (): Promise<void> => {
      for (let attempt = 1; !this.closed; attempt++) {
        if (this.backup!.down || this.resyncRun !== undefined) {
          await sleepUnlessStopped(HEAL_RETRY_MS, this.stopping.signal);
          continue;
        }
        try {
          // The keys in flight at the crash that the primary committed are in its ledger: first
          // those, then the resync finds what the backup holds that the primary never committed.
          const replayed = this.ledger === undefined ? 0 : await this.repair!.replayOwed(this.ledger, this.stopping.signal);
          if (replayed > 0) this.logger.info({ replayed }, "healing: replayed the keys owed at the unclean stop");
          const done = await this.resync();
          this.healing = false;
          this.logger.info({ ...done, attempt }, "healed: the backup equals the primary after the unclean stop");
          return;
        } catch (error) {
          if (this.closed) return;
          this.logger.warn({ err: causeOf(error), attempt }, "healing stopped; trying again");
          await sleepUnlessStopped(HEAL_RETRY_MS, this.stopping.signal);
        }
      }
    };
    this.healRun = run();
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError("unavailable", "the server is shutting down; retry on another instance or later");
  }

  /**
   * The ephemeral tier when `ref` is an ephemeral key and that tier exists. Ephemeral keys are LDK
   * names: a VSS store's key that happens to read `scorer` is a client's data, always durable.
   */
  private ephemeralTierFor(ref: KeyRef): Tier | undefined {
    return this.ephemeral && !isVssStore(ref) && this.ephemeralKeys.has(ref) ? this.ephemeral : undefined;
  }

  /** Ephemeral keys that `ns` can hold in the ephemeral tier (none without that tier). */
  private ephemeralKeysIn(ns: NamespaceRef): ReadonlySet<string> {
    return this.ephemeral && !isVssStore(ns) ? this.ephemeralKeys.inNamespace(ns) : new Set();
  }

  // Every request's names are validated here, once: the tiers get the proven copies (validKey,
  // validNamespace, validTxn) and do not check them again.
  async readVersioned(unchecked: KeyRef, options: CallOptions = {}): Promise<VersionedValue> {
    const ref = validKey(unchecked, "read");
    this.checkOpen();
    const tier = this.ephemeralTierFor(ref) ?? this.primary;
    try {
      return await tier.call((store) => store.readVersioned(ref, options), options.deadline);
    } catch (error) {
      throw tierFailure(tier.name, error);
    }
  }

  /**
   * The version of a mutation: the caller's (within the clock's skew), or for a mutation without
   * one a proposal from the clock that the backend moves past the stored version (`plain`).
   */
  private versionFor(requested: bigint | undefined, ref: KeyRef, operation: string): { version: bigint; plain: boolean } {
    validateVersion(requested, ref, operation);
    if (requested === undefined) return { version: this.clock.next(), plain: true };
    this.clock.admit(requested, `${operation} ${formatPath(ref)}`);
    return { version: requested, plain: false };
  }

  async write(unchecked: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    const ref = validKey(unchecked, "write");
    return this.mutateKey(
      "write",
      ref,
      options,
      (store, tierOptions) => store.write(ref, value, { ...tierOptions, revision: tierOptions.revision ?? options.revision, exact: options.exact }),
      value.byteLength,
    );
  }

  async remove(unchecked: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    const ref = validKey(unchecked, "remove");
    return this.mutateKey("remove", ref, options, (store, tierOptions) => store.remove(ref, { ...tierOptions, lazy: options.lazy, exact: options.exact }));
  }

  /** Routes one mutation and runs it in the key's turn; `options.onVersion` learns the version it got. */
  private async mutateKey(
    operation: "write" | "remove",
    ref: KeyRef,
    options: MutationOptions,
    apply: (store: KVStore, options: MutationOptions) => Promise<MutationOutcome>,
    bytes = 0,
  ): Promise<MutationOutcome> {
    this.checkOpen();
    this.refuseWhileBackupDown(ref);
    // The version is fixed on arrival, before any waiting: arrival order is issue order.
    const { version, plain } = this.versionFor(options.version, ref, operation);
    this.checkQuotaSupported(options.quota);
    this.quotas.note(storeIdOf(ref), options.quota);
    let applied = version;
    const onVersion = (v: bigint): void => void (applied = v);
    const ephemeral = this.ephemeralTierFor(ref);
    const outcome = await this.lock.run(
      lockKey(ref),
      version,
      async () => {
        const extraMs = transferAllowanceMs(bytes);
        if (ephemeral) return this.callTier(ephemeral, (store) => apply(store, { version, plain, onVersion }), options.deadline, extraMs);
        if (this.backup === undefined) {
          return this.callTier(this.primary, (store) => apply(store, { version, plain, onVersion, quota: options.quota }), options.deadline, extraMs);
        }
        return this.mutateBothTiers(operation, ref, { version, plain }, options, apply, onVersion, bytes);
      },
      options,
      plain ? { appliedAt: () => applied } : undefined,
    );
    if (outcome === "stale") this.counts.staleMutations++;
    else options.onVersion?.(applied);
    return outcome;
  }

  /**
   * A durable mutation with a backup: both tiers store the same version and the primary's
   * revision (a backup that missed a mutation must not count revisions of its own: VSS versions
   * and Txn checks are revisions). A primary that reports the state it committed decides them in
   * that commit and the backup follows it; another is read first (`mutateBothTiersRead`).
   */
  private async mutateBothTiers(
    operation: "write" | "remove",
    ref: KeyRef,
    ordering: { version: bigint; plain: boolean },
    options: MutationOptions,
    apply: (store: KVStore, options: MutationOptions) => Promise<MutationOutcome>,
    onVersion: (version: bigint) => void,
    bytes: number,
  ): Promise<MutationOutcome> {
    if (!isStateReporter(this.primary.store)) return this.mutateBothTiersRead(operation, ref, ordering, options, apply, onVersion, bytes);
    // The primary's outcome: the state it stored, or for a stale mutation the state that won (a
    // retry of a version the primary has reaches the backup with the primary's revision for it).
    let decided: KeyState | undefined;
    const onState = (state: KeyState): void => void (decided = state);
    // Only a plain mutation's version is the primary's to decide (it is never stale); a stale
    // one travels (and is settled) with its own.
    const version = (): bigint => (ordering.plain ? (decided?.version ?? ordering.version) : ordering.version);
    const result = await this.fanOut(
      operation,
      ref,
      version,
      (store, tier, owed, attemptDeadline) => {
        const deadline = attemptDeadline !== undefined && { deadline: attemptDeadline };
        if (tier === "primary") return apply(store, { ...ordering, owedToBackup: owed, onState, ...deadline, quota: options.quota });
        return apply(store, { version: version(), ...(operation === "write" && decided !== undefined && { revision: decided.revision }), ...deadline });
      },
      options.deadline,
      true,
      transferAllowanceMs(bytes),
    );
    if (result === "applied") onVersion(version());
    return result;
  }

  /**
   * `mutateBothTiers` over a primary that cannot report its state: the state is read off the
   * primary first, and both tiers are written at once. A plain mutation's version moves past the
   * stored one; should another instance sharing the primary write the key in between, the
   * primary answers stale and the mutation is decided again.
   */
  private async mutateBothTiersRead(
    operation: "write" | "remove",
    ref: KeyRef,
    ordering: { version: bigint; plain: boolean },
    options: MutationOptions,
    apply: (store: KVStore, options: MutationOptions) => Promise<MutationOutcome>,
    onVersion: (version: bigint) => void,
    bytes: number,
  ): Promise<MutationOutcome> {
    const needsState = ordering.plain || (operation === "write" && !options.exact && options.revision === undefined);
    for (let attempt = 1; ; attempt++) {
      const stored = needsState ? await this.callTier(this.primary, (store) => stateOrAbsent(store, ref), options.deadline) : undefined;
      const version = ordering.plain && stored !== undefined && stored.version >= ordering.version ? stored.version + 1n : ordering.version;
      let revision: bigint | undefined;
      if (operation === "write" && !options.exact && options.revision === undefined) {
        // A mutation the primary already has (a retry of the same version) reaches the backup
        // with the revision the primary stored for it: the retry repairs a backup that missed it.
        const appliesInPrimary = stored === undefined || version > stored.version;
        revision = stored === undefined ? 1n : appliesInPrimary ? stored.revision + 1n : stored.revision;
      }
      const result = await this.fanOut(
        operation,
        ref,
        () => version,
        (store, tier, owed, attemptDeadline) =>
          apply(store, {
            version,
            owedToBackup: owed,
            ...(attemptDeadline !== undefined && { deadline: attemptDeadline }),
            ...(revision !== undefined && { revision }),
            ...(tier === "primary" && { quota: options.quota }),
          }),
        options.deadline,
        // A quota is decided by the primary: the backup must not take what the primary refuses.
        options.quota !== undefined,
        transferAllowanceMs(bytes),
      );
      if (result === "applied" || !ordering.plain) {
        onVersion(version);
        return result;
      }
      if (attempt >= PLAIN_ATTEMPTS) {
        throw new StoreError("unavailable", `Failed to ${operation} ${formatPath(ref)}: the key kept changing on another instance; retry`);
      }
    }
  }

  private async callTier<T>(
    tier: Tier,
    operation: (store: KVStore, deadline: number | undefined) => Promise<T>,
    deadline: number | undefined,
    extraMs = 0,
  ): Promise<T> {
    try {
      return await tier.call(operation, deadline, { extraMs });
    } catch (error) {
      throw tierFailure(tier.name, error);
    }
  }

  /**
   * Applies a durable mutation to the primary and the backup at once; both settle before the key
   * is released, so the next mutation of this key can never overtake a slow tier. The primary
   * records the mutation as owed to the backup in its own commit (`owed`), settled once the
   * backup has it.
   */
  private async fanOut<T>(
    operation: string,
    ref: KeyRef,
    /** The mutation's version, known once the primary applied it (a plain one's is decided there). */
    versionOf: () => bigint,
    apply: (store: KVStore, tier: "primary" | "backup", owedToBackup: boolean, attemptDeadline: number | undefined) => Promise<T>,
    deadline: number | undefined,
    primaryFirst: boolean,
    extraMs = 0,
  ): Promise<T> {
    const backup = this.backup!;
    const owed = this.ledger !== undefined;
    if (backup.down) {
      // The breaker is open (§4.12): nothing waits for the backup. Degraded: the primary alone,
      // the key owed in its commit; required: refused before anything is applied.
      if (!owed || this.policy.name !== "degraded") throw tierFailure("backup", tierDownError(backup));
      const result = await this.callTier(this.primary, (store, d) => apply(store, "primary", true, d), deadline, extraMs);
      this.counts.skippedBackupWrites++;
      return result;
    }
    const inPrimary = (): Promise<T> => this.primary.call((store, d) => apply(store, "primary", owed, d), deadline, { extraMs });
    const inBackup = (): Promise<T> => backup.call((store, d) => apply(store, "backup", false, d), deadline, { extraMs });
    let primaryResult: PromiseSettledResult<T>;
    let backupResult: PromiseSettledResult<T>;
    if (primaryFirst) {
      [primaryResult] = await Promise.allSettled([inPrimary()]);
      if (primaryResult.status === "rejected") throw tierFailure("primary", primaryResult.reason);
      [backupResult] = await Promise.allSettled([inBackup()]);
    } else {
      [primaryResult, backupResult] = await Promise.allSettled([inPrimary(), inBackup()]);
    }
    if (primaryResult.status === "rejected") {
      if (backupResult.status === "fulfilled") this.reportDivergence(operation, ref, versionOf(), "backup", "primary");
      throw tierFailure("primary", primaryResult.reason, backupResult.status === "fulfilled" ? ["backup"] : []);
    }
    if (backupResult.status === "fulfilled") {
      if (owed) this.settle(ref, versionOf());
      return primaryResult.value;
    }
    if (owed && this.policy.acknowledgesWithout(backupResult.reason)) {
      this.logger.warn(
        { key: formatPath(ref), operation, err: StoreError.from(backupResult.reason).message },
        "backup unavailable: acknowledged from the primary alone; the key is owed to the backup",
      );
      return primaryResult.value;
    }
    this.reportDivergence(operation, ref, versionOf(), "primary", "backup");
    throw tierFailure("backup", backupResult.reason, ["primary"]);
  }

  /** The backup has the mutation: forget the primary's record of it (rides the next commit). */
  private settle(ref: KeyRef, version: bigint): void {
    this.ledger!.settleOwed(ref, version).catch((error: unknown) => {
      // The record stays; the next replay copies the key again, which is harmless.
      this.logger.warn({ key: formatPath(ref), err: StoreError.from(error).message }, "could not settle an owed key");
    });
  }

  private reportDivergence(operation: string, ref: KeyRef, version: bigint, succeeded: TierName, failed: TierName): void {
    this.counts.divergences++;
    this.logger.warn(
      { key: formatPath(ref), store: storeIdOf(ref), operation, version: version.toString(), succeeded: [succeeded], failed: [failed] },
      "tiers diverged: a mutation failed in one tier after succeeding in another (replayed from the ledger, or repair with resync)",
    );
  }

  /**
   * Applies the batch atomically in the primary under every involved key's turn (its quota decided
   * there), then mirrors the outcome to the backup as one atomic batch with the primary's versions
   * and revisions.
   */
  async txn(unchecked: TxnRequest): Promise<TxnResult> {
    const request = validTxn(unchecked);
    // A backup could not be given the same exact batch: followers apply theirs to the primary's backend.
    if (request.exact) throw invalidArgument("Failed to apply a transaction: an exact transaction goes to a backend, not the tiered store");
    this.checkOpen();
    const refs: KeyRef[] = [...request.checks, ...request.operations];
    const { version, plain } = this.versionFor(request.version, refs[0]!, "apply a transaction to");
    const ephemeral = refs.map((ref) => this.ephemeralTierFor(ref) !== undefined);
    if (ephemeral.some((e) => e !== ephemeral[0])) {
      throw invalidArgument("Failed to apply a transaction: it mixes ephemeral keys with durable ones");
    }
    this.checkQuotaSupported(request.quota);
    if (request.operations[0] !== undefined) this.quotas.note(storeIdOf(request.operations[0]), request.quota);
    return this.lock.exclusive(
      refs.map(lockKey),
      async () => {
        const extraMs = transferAllowanceMs(request.operations.reduce((sum, op) => sum + (op.kind === "write" ? op.value.byteLength : 0), 0));
        if (ephemeral[0]) return this.callTier(this.ephemeral!, (store) => store.txn({ ...request, version, plain, quota: undefined }), request.deadline, extraMs);
        const owed = this.ledger !== undefined;
        // A required backup that is down refuses the Txn before the primary applies it (§4.12).
        if (this.backup?.down === true && request.operations.length > 0 && !(owed && this.policy.name === "degraded")) {
          throw tierFailure("backup", tierDownError(this.backup));
        }
        const result = await this.callTier(this.primary, (store) => store.txn({ ...request, version, plain, owedToBackup: owed }), request.deadline, extraMs);
        if (!result.succeeded) return result;
        result.outcomes.forEach((outcome) => outcome === "stale" && this.counts.staleMutations++);
        if (this.backup !== undefined && request.operations.length > 0) {
          await this.mirrorTxn(request.operations, result, request.deadline, extraMs);
        }
        return result;
      },
      request,
    );
  }

  private async mirrorTxn(
    operations: readonly TxnOperation[],
    result: TxnResult & { succeeded: true },
    deadline: number | undefined,
    extraMs: number,
  ): Promise<void> {
    const mirrored = reorderedBatch(operations, (i) => ({ version: result.versions[i], revision: result.revisions[i] }));
    // The breaker may have opened while the primary applied the batch (its commit's sync lets
    // other calls run). Degraded with a ledger: the keys stay owed. Otherwise the call below fails
    // at once and the Txn with it (required once acknowledged it here, which the crash test caught).
    if (this.backup!.down && this.ledger !== undefined && this.policy.name === "degraded") {
      this.counts.skippedBackupWrites++;
      return;
    }
    try {
      await this.backup!.call((store, d) => store.txn({ ...mirrored, ...(d !== undefined && { deadline: d }) }), deadline, { extraMs });
      if (this.ledger !== undefined) operations.forEach((op, i) => this.settle(op, result.versions[i]!));
    } catch (error) {
      if (this.ledger !== undefined && this.policy.acknowledgesWithout(error)) {
        this.logger.warn({ keys: operations.length, err: StoreError.from(error).message }, "backup unavailable: transaction acknowledged from the primary alone; its keys are owed");
        return;
      }
      this.reportDivergence("txn", operations[0]!, result.versions[0]!, "primary", "backup");
      throw tierFailure("backup", error, ["primary"]);
    }
  }

  /** Makes the backup equal to the primary, one resync at a time (see `BackupRepair.resync`). */
  async resync(onProgress: (progress: ResyncProgress) => void = () => {}, signal?: AbortSignal): Promise<ResyncProgress> {
    this.checkOpen();
    if (this.repair === undefined) {
      throw new StoreError("failed-precondition", "resync needs a backup tier; this server has none (--backup)");
    }
    if (this.resyncRun !== undefined) throw new StoreError("failed-precondition", "a resync is already running on this server");
    const stop = signal === undefined ? this.stopping.signal : AbortSignal.any([signal, this.stopping.signal]);
    // The repair updates its progress in place: keeping the object is enough (no copy per key).
    this.resyncRun = this.repair.resync((progress) => {
      this.lastResync = progress;
      onProgress(progress);
    }, stop);
    try {
      // Also when no key reported progress (both tiers empty).
      return (this.lastResync = await this.resyncRun);
    } catch (error) {
      const cause = StoreError.from(error);
      if (cause.code === "cancelled") throw cause;
      // Tier details (addresses, TLS) go to the log; the caller learns what to do.
      this.logger.warn({ err: cause.message }, "resync stopped");
      throw new StoreError(cause.code === "internal" ? "internal" : "unavailable", "resync stopped: a tier failed (see the server log); keys repaired so far stay repaired; run it again", { cause });
    } finally {
      this.resyncRun = undefined;
    }
  }

  /** One replay of the ledger at a time; failures are logged and retried on the next tick. */
  private replayOwed(): void {
    if (this.replayRun !== undefined || this.closed || this.backup!.down) return;
    this.replayRun = this.repair!
      .replayOwed(this.ledger!, this.stopping.signal)
      .then(
        () => {},
        (error: unknown) => this.logger.warn({ err: StoreError.from(error).message }, "replaying owed keys failed"),
      )
      .finally(() => (this.replayRun = undefined));
  }

  async backupStatus(): Promise<BackupStatus> {
    return {
      configured: this.backup !== undefined,
      policy: this.policy.name,
      owedKeys: this.ledger === undefined ? 0 : await this.ledger.countOwed(),
      divergences: this.counts.divergences,
      state: this.backup?.down === true ? "down" : "up",
      transitions: this.backup?.health?.breaker.transitions ?? 0,
      downMs: this.backup?.health?.breaker.downMs ?? 0,
      timeLimitMs: this.backup?.health?.latency.limitMs ?? 0,
      lastStopClean: this.lastStop?.clean ?? true,
      healing: this.healing,
      heals: this.heals,
    };
  }

  async list(unchecked: NamespaceRef, options: ListOptions = {}): Promise<string[]> {
    const ns = validNamespace(unchecked, "list");
    this.checkOpen();
    const ephemeralKeys = this.ephemeralKeysIn(ns);
    const primaryKeys = await this.callTier(this.primary, (store) => store.list(ns, options), options.deadline);
    if (ephemeralKeys.size === 0) return primaryKeys;
    // Primary copies of ephemeral keys are stale (written before the ephemeral tier existed).
    const live = await this.callTier(this.ephemeral!, (store) => store.list(ns, options), options.deadline);
    return [...primaryKeys.filter((k) => !ephemeralKeys.has(k)), ...live.filter((k) => ephemeralKeys.has(k))].slice(0, options.limit);
  }

  /**
   * Pages through the primary first, then appends the ephemeral tier's keys (sorted) on the
   * primary's last page. In such namespaces the token wraps the primary's token (`p…`) or the
   * last ephemeral key returned (`e…`); elsewhere the primary's token passes through untouched.
   */
  async listPage(unchecked: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    const ns = validNamespace(unchecked, "list");
    this.checkOpen();
    const ephemeralKeys = this.ephemeralKeysIn(ns);
    if (ephemeralKeys.size === 0) {
      return this.callTier(this.primary, (store) => store.listPage(ns, page), page.deadline);
    }
    const size = effectivePageSize(page.pageSize);
    const position = page.pageToken ? decodePageToken(ns, page.pageToken) : "p";
    if (position.startsWith("e")) return this.ephemeralPage(ns, ephemeralKeys, [], position.slice(1), size, page);
    if (!position.startsWith("p")) throw invalidArgument(`Failed to list ${formatPath(ns)}: malformed page_token`);

    const primaryPage = await this.callTier(
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
    const live = await this.callTier(this.ephemeral!, (store) => store.list(ns, options), options.deadline);
    const remaining = live.filter((k) => ephemeralKeys.has(k) && k > afterKey).sort();
    const tail = remaining.slice(0, Math.max(0, size - head.length));
    const last = tail.at(-1) ?? afterKey;
    const more = tail.length < remaining.length;
    return { keys: [...head, ...tail], nextPageToken: more ? encodePageToken(ns, `e${last}`) : "" };
  }

  /**
   * The keys a read would find: the primary's (minus ephemeral keys when an ephemeral tier holds
   * them) merged with the ephemeral tier's, in (store, primary, secondary, key) order.
   */
  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    this.checkOpen();
    if (this.ephemeral === undefined) return this.callTier(this.primary, (store) => store.listAllKeys(request), request.deadline);
    const limit = effectivePageSize(request.limit);
    const fromTier = async (tier: Tier, keep: (key: KeyVersion) => boolean): Promise<{ kept: KeyVersion[]; more: boolean }> => {
      // Filtering can thin a page: keep fetching until `limit` keys are kept or the tier ends.
      const kept: KeyVersion[] = [];
      let pageToken = request.pageToken;
      for (;;) {
        const page = await this.callTier(tier, (store) => store.listAllKeys({ ...request, pageToken, limit }), request.deadline);
        kept.push(...page.keys.filter(keep));
        if (page.nextPageToken === "") return { kept, more: false };
        if (kept.length >= limit) return { kept, more: true };
        pageToken = page.nextPageToken;
      }
    };
    const routedToEphemeral = (key: KeyRef): boolean => this.ephemeralTierFor(key) !== undefined;
    const durable = await fromTier(this.primary, (key) => !routedToEphemeral(key));
    const ephemeral = await fromTier(this.ephemeral, routedToEphemeral);
    const merged = [...durable.kept, ...ephemeral.kept].sort(compareKeys);
    const keys = merged.slice(0, limit);
    const more = merged.length > limit || durable.more || ephemeral.more;
    return { keys, nextPageToken: more && keys.length > 0 ? encodeKeyCursor(keys.at(-1)!) : "" };
  }

  async highestVersion(): Promise<bigint> {
    return this.primary.store.highestVersion();
  }

  /**
   * Usage of the usage groups with a quota (a store, or a VSS user's stores, by group id), read
   * from the primary's usage record, and their quotas (metrics; bounded by `limit`).
   */
  async countedUsage(limit: number): Promise<Array<[string, GroupUsage, Quota]>> {
    const reader = this.primary.store;
    if (!isStoreUsageReader(reader)) return [];
    return Promise.all(this.quotas.known(limit).map(async ([group, quota]): Promise<[string, GroupUsage, Quota]> => [group, await reader.groupUsage(group), quota]));
  }

  /**
   * The primary, for a snapshot of one instant (contract §2.12); `failed-precondition` when its
   * backend cannot give one consistent view (fs:, grpc://).
   */
  snapshotSource(): SnapshotSource {
    const store = this.primary.store;
    if (!isSnapshotSource(store)) {
      throw new StoreError("failed-precondition", "this server's primary cannot take a consistent snapshot (sqlite:, postgres:// and memory: primaries can)");
    }
    return store;
  }

  /** The primary tier's backend (the wiring asks what kind it is). */
  get primaryStore(): KVStore {
    return this.primary.store;
  }

  /** The primary's change log (Watch, followers; contract §9), when its backend keeps one. */
  changeLog(): ChangeLog | undefined {
    const store = this.primary.store;
    return isChangeLog(store) ? store : undefined;
  }

  /** Keys and value bytes a store holds now, from the primary's usage record (admin output). */
  storeUsage(storeId: string): Promise<StoreUsage> {
    return this.callTier(this.primary, (store) => this.usageReader(store).storeUsage(storeId), undefined);
  }

  /** The usage of the group a store belongs to (a VSS user's stores), from the primary's usage record. */
  groupUsage(storeId: string): Promise<GroupUsage> {
    return this.callTier(this.primary, (store) => this.usageReader(store).groupUsage(storeId), undefined);
  }

  /** Counts a store's keys and bytes from the primary's data and corrects its usage record. */
  recountUsage(storeId: string): Promise<{ recorded: StoreUsage; counted: StoreUsage }> {
    return this.callTier(this.primary, (store) => this.usageReader(store).recountUsage(storeId), undefined);
  }

  /** A quota is decided by the primary's usage record: without one it cannot be kept, so it is refused, not ignored. */
  private checkQuotaSupported(quota: Quota | undefined): void {
    if (quota !== undefined) this.usageReader(this.primary.store);
  }

  private usageReader(store: KVStore): StoreUsageReader {
    if (!isStoreUsageReader(store)) {
      throw new StoreError("failed-precondition", "this server's primary keeps no usage record (fs:, or a chained instance); use sqlite:, postgres: or memory:");
    }
    return store;
  }

  /**
   * Stops accepting work, cancels a running resync and waits for it and for a running replay,
   * then closes the tiers: no database closes under a running repair.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.replayTimer);
    this.stopping.abort();
    await Promise.allSettled([this.replayRun, this.resyncRun, this.healRun, ...this.probes]);
    await Promise.all([this.primary, this.backup, this.ephemeral].map((tier) => tier?.store.close()));
    // A heal cut short must run again at the next start: the stop counts as clean only without one.
    if (this.lastStop !== undefined && !this.healing) await this.lastStop.markClean();
  }
}

/** The key a probe reads: its absence is an answer. */
const PROBE_KEY: KeyRef = { primaryNamespace: "", secondaryNamespace: "", key: "tierkv-probe" };

/** A probe gets the tier's time limit, but at least a second (a new connection, a TLS handshake). */
function probeLimitMs(tier: Tier): number {
  return Math.max(1_000, tier.health?.latency.limitMs ?? TIER_STARTUP_CHECK_MS);
}

function tierDownError(tier: Tier): StoreError {
  return new StoreError("unavailable", `the ${tier.name} tier is down (circuit open): ${tier.health?.breaker.lastCause ?? ""}`);
}

/** Waits `ms`, or less when `signal` aborts. */
function sleepUnlessStopped(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
