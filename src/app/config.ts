//! What the wiring needs to know: the typed configuration `serve` resolves its settings into, and
//! the error for a configuration that cannot work (exit 2, naming the flag at fault).

import type { AuthMode } from "../auth/authenticator.js";
import type { BackupPolicy, TierName } from "../tier/tier-store.js";

/** A setting that could not be resolved or cannot work: the message names the source and the problem. */
export class SettingsError extends Error {
  override readonly name = "SettingsError";
}

/** The configuration of a running tierkv (`serve`'s settings satisfy it). */
export interface AppConfig {
  readonly listen: string;
  readonly vssListen: string | undefined;
  readonly metricsListen: string | undefined;
  readonly metricsPerStore: boolean;
  readonly httpCorsOrigin: readonly string[];
  readonly primary: string;
  readonly backup: string | undefined;
  readonly ephemeral: string | undefined;
  readonly ephemeralKey: readonly string[];
  /** The leader a follower tails (`grpc://HOST:PORT?token_file=…`, contract §9.5); undefined: no follower. */
  readonly follow: string | undefined;
  readonly backupPolicy: BackupPolicy;
  readonly retryInitialDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly retryMaxAttempts: number;
  readonly retryDisable: readonly TierName[];
  readonly maxVersionSkewMs: number;
  /** Time limits and breakers of the tiers (contract §4.12). */
  readonly tierTimeLimitP99Multiple: number;
  readonly tierTimeLimitMinMs: number;
  readonly tierTimeLimitMaxMs: number;
  readonly breakerFailures: number;
  readonly breakerFailureMs: number;
  readonly probeMaxDelayMs: number;
  readonly maxValueBytes: number;
  readonly maxBatchItems: number;
  readonly maxBatchBytes: number;
  readonly maxListKeys: number;
  readonly maxConcurrentStreams: number;
  readonly maxConnectionAgeMs: number;
  readonly auth: readonly AuthMode[];
  readonly tokensFile: string | undefined;
  readonly jwtJwksFile: string | undefined;
  readonly jwtPublicKeyFile: string | undefined;
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  readonly jwtStoreClaim: string;
  readonly jwtAllowNoExp: boolean;
  readonly sigsAllowFile: string | undefined;
  readonly quotaMaxKeys: number;
  readonly quotaMaxBytes: number;
  readonly quotaMaxStores: number;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly tlsClientCa: string | undefined;
  /** What the change log keeps (contract §9): `parseRetention`'s form, e.g. `1h,100000`. */
  readonly watchRetention: string;
  readonly watchProgressIntervalMs: number;
  readonly streamMaxStallMs: number;
}
