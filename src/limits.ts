//! Every limit of contract §7 (docs/contract.md, "Limits") and every default a setting starts
//! from, each defined once: the work one request may cause and the sizes derived from it (etcd's
//! `--max-request-bytes` / `--max-txn-ops` idea), names and versions, retries, timeouts, graces,
//! batches and intervals. `serve` turns the ones an operator may want to change into settings;
//! the modules that enforce a limit import it from here.

/** Default and largest page size of `ListPage` and `ListAllKeys`. */
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 1000;

/** Resolves a requested page size to the one a backend uses. */
export function effectivePageSize(requested: number | undefined): number {
  if (requested === undefined || requested <= 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

/**
 * Room a message needs besides its values: names, versions and protobuf framing. A mutation's
 * names are at most 3 × 120 characters (≤ 3 × 480 bytes of UTF-8), plus store id and varints.
 */
export const PER_MUTATION_OVERHEAD_BYTES = 2 * 1024;
/** Room for one message's fixed framing on top of its mutations. */
export const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

/** The limits an operator can set (see `serve`'s settings). */
export interface Limits {
  /** Largest value a write accepts. */
  readonly maxValueBytes: number;
  /** Most mutations (or operations + checks of a Txn) one request may carry. */
  readonly maxBatchItems: number;
  /** Largest sum of value bytes one batch request may carry. */
  readonly maxBatchBytes: number;
  /** Most keys an unpaged `List` returns; a larger namespace is refused, pointing to `ListPage`. */
  readonly maxListKeys: number;
  /** Most concurrent streams (calls) per HTTP/2 connection. */
  readonly maxConcurrentStreams: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxValueBytes: 64 * 1024 * 1024,
  maxBatchItems: 1000,
  maxBatchBytes: 64 * 1024 * 1024,
  maxListKeys: 10_000,
  maxConcurrentStreams: 256,
};

/**
 * Most fields one request may carry, known or unknown, at every level of nesting (the tags of a
 * binary message, the members of a JSON one): a few per batch item — ours use at most 10, so a
 * newer client's extra fields fit — and room for the rest. Counted before decoding: millions of
 * tiny fields fit in a message's bytes, and each costs the decoder work and memory.
 */
const FIELDS_PER_BATCH_ITEM = 16;
const FIELDS_PER_REQUEST = 1024;

export function requestFieldLimit(limits: Limits): number {
  return FIELDS_PER_BATCH_ITEM * limits.maxBatchItems + FIELDS_PER_REQUEST;
}

/** Deepest nesting of a request's messages (JSON objects and arrays): ours nest a few levels. */
export const MAX_REQUEST_DEPTH = 32;

/** The largest gRPC message the server accepts and sends under `limits`. */
export function messageLimitBytes(limits: Limits): number {
  const batch = limits.maxBatchBytes + limits.maxBatchItems * PER_MUTATION_OVERHEAD_BYTES;
  return Math.max(limits.maxValueBytes, batch) + MESSAGE_OVERHEAD_BYTES;
}

/**
 * Group commit: the most mutations and value bytes one SQLite transaction takes, so one commit
 * never holds the event loop for more than a few milliseconds; the rest wait for the next one.
 */
export const GROUP_COMMIT_MAX_MUTATIONS = 512;
export const GROUP_COMMIT_MAX_BYTES = 8 * 1024 * 1024;

/** SQLite's busy timeout: short, because a wait blocks the whole event loop. */
export const SQLITE_BUSY_TIMEOUT_MS = 100;


// ---------------------------------------------------------------------------------------------
// Names and versions (contract §1)

/** LDK's limit on namespace and key length, in characters. */
export const MAX_NAME_LENGTH = 120;
/** VSS's limit on key length, in characters. */
export const MAX_VSS_KEY_LENGTH = 600;
/** Longest store id, in characters. */
export const MAX_STORE_ID_LENGTH = 256;
/** Versions are stored as signed 64-bit integers (SQLite, PostgreSQL), so they stay below 2^63. */
export const MAX_VERSION = (1n << 63n) - 1n;
/** How far ahead of the clock a caller's version may be, by default: 10 minutes. */
export const DEFAULT_MAX_VERSION_SKEW_MS = 10 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// Authentication

/**
 * Clock leeway for a JWT's `exp` (and `nbf`), in seconds. vss-server verifies with jsonwebtoken's
 * `Validation::new(Algorithm::RS256)` (rust/auth-impls/src/jwt.rs), whose default is 60 s.
 */
export const JWT_LEEWAY_SECONDS = 60;

// ---------------------------------------------------------------------------------------------
// Quotas (contract §6.3)

/**
 * `--quota-max-keys`, `--quota-max-bytes`, `--quota-max-stores`: the quota of identities without
 * one of their own. 0, the default, is no limit.
 */
export const DEFAULT_QUOTA_SETTINGS = { maxKeys: 0, maxBytes: 0, maxStores: 0 } as const;

// ---------------------------------------------------------------------------------------------
// Tiers

/** Default retries of a tier call (`--retry-initial-delay-ms`, `--retry-max-delay-ms`, `--retry-max-attempts`). */
export const DEFAULT_RETRY = { initialDelayMs: 20, maxDelayMs: 1_000, maxAttempts: 5 } as const;
/**
 * A tier's health by default (contract §4.12; `--tier-time-limit-…`, `--breaker-…`,
 * `--probe-max-delay-ms`): a call's time limit is `timeLimitP99Multiple` × the tier's recent p99,
 * within `timeLimitMinMs`…`timeLimitMaxMs`; its breaker opens after `breakerFailures` failures in
 * a row or `breakerFailureMs` of failures; probes of a tier that is down start
 * `probeInitialDelayMs` apart and double up to `probeMaxDelayMs`.
 */
export const DEFAULT_TIER_HEALTH = {
  timeLimitP99Multiple: 10,
  timeLimitMinMs: 250,
  timeLimitMaxMs: 30_000,
  breakerFailures: 5,
  breakerFailureMs: 2_000,
  probeInitialDelayMs: 100,
  probeMaxDelayMs: 1_000,
} as const;
/** Bytes per ms a tier call's time limit grows by with the values it carries: 10 MiB/s at least. */
export const TIER_TRANSFER_BYTES_PER_MS = 10_240;
/** How long the start-up check waits for each tier. */
export const TIER_STARTUP_CHECK_MS = 5_000;
/** How long a heal after an unclean stop waits before trying again (backup down, or a resync running). */
export const HEAL_RETRY_MS = 1_000;
/** How often keys owed to the backup are replayed, in ms, and how many are read from the ledger at a time. */
export const LEDGER_REPLAY_INTERVAL_MS = 1000;
export const LEDGER_REPLAY_PAGE = 500;
/**
 * How long a settled ledger record may wait for a commit to ride (SQLite): a settle needs no commit
 * of its own (a crash before it only replays the key again), so it joins the next one.
 */
export const LEDGER_SETTLE_DELAY_MS = 100;
/** Keys a resync repairs at once. */
export const RESYNC_WINDOW = 64;

// ---------------------------------------------------------------------------------------------
// Backends

/** PostgreSQL: default and largest connection pool (`pool_max`). */
export const POSTGRES_DEFAULT_POOL_MAX = 10;
export const POSTGRES_MAX_POOL_MAX = 1000;
/** PostgreSQL: default and largest time to connect or wait for a pooled connection (`connect_timeout`), in seconds. */
export const POSTGRES_DEFAULT_CONNECT_TIMEOUT_S = 10;
export const POSTGRES_MAX_CONNECT_TIMEOUT_S = 3600;
/** PostgreSQL: attempts of a transaction that failed with a serialization failure or deadlock. */
export const POSTGRES_MAX_TXN_ATTEMPTS = 5;
/** `fs:`: longest encoded store id used as a directory name; a longer one becomes `~<sha256>`. */
export const FS_MAX_ENCODED_STORE_ID = 200;
/** Remote tiers (`grpc(s)://`): default batch, under what any default tierkv accepts (URI `max_batch_bytes`, `max_batch_items`). */
export const REMOTE_DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;
export const REMOTE_DEFAULT_BATCH_ITEMS = Math.min(256, DEFAULT_LIMITS.maxBatchItems);
/** Remote tiers: keepalive pings while calls are in flight, and the reconnect backoff, in ms. */
export const REMOTE_KEEPALIVE_TIME_MS = 30_000;
export const REMOTE_KEEPALIVE_TIMEOUT_MS = 10_000;
export const REMOTE_RECONNECT_BACKOFF_MS = { initial: 100, max: 2_000 } as const;

// ---------------------------------------------------------------------------------------------
// Addresses, timeouts and graces

/** Where `serve` listens for gRPC, and where the CLI's client commands call, by default. */
export const DEFAULT_LISTEN = "127.0.0.1:50051";
/** A client call's deadline when the caller gives none (the CLI's `--timeout`, a remote tier's `timeout_ms`). */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
/** How long in-flight calls get to finish after SIGINT/SIGTERM before they are cancelled. */
export const SHUTDOWN_GRACE_MS = 30_000;

/** The gRPC server's keepalive pings on idle connections, and how long a ping may go unanswered. */
export const SERVER_KEEPALIVE_TIME_MS = 60_000;
export const SERVER_KEEPALIVE_TIMEOUT_MS = 20_000;
/** How long calls on a connection past its maximum age (`--max-connection-age-ms`) get to finish. */
export const CONNECTION_AGE_GRACE_MS = 30_000;
/** How often a running resync reports progress to its caller. */
export const RESYNC_PROGRESS_INTERVAL_MS = 250;

// ---------------------------------------------------------------------------------------------
// Watch and the change log (contract §9)

/** What `--watch-retention` keeps by default: an hour of changes, at most this many per store. */
export const DEFAULT_WATCH_RETENTION_MS = 60 * 60 * 1000;
export const DEFAULT_WATCH_RETENTION_CHANGES = 100_000;
/** How often the server prunes the change log, and the most changes one pruning drops. */
export const WATCH_PRUNE_INTERVAL_MS = 5_000;
export const WATCH_PRUNE_MAX_CHANGES = 10_000;
/** Changes one watcher reads per page, and the value bytes past which a page ends early. */
export const WATCH_PAGE_CHANGES = 256;
export const WATCH_PAGE_MAX_BYTES = 4 * 1024 * 1024;
/** How often an idle watch is sent a progress message (`--watch-progress-interval`). */
export const DEFAULT_WATCH_PROGRESS_INTERVAL_MS = 1_000;
/**
 * An all-stores watch that is delivering changes gets progress (with every store's head) at
 * least this often: a follower measures its lag against the heads, and heads a second old let a
 * follower a fraction of a second behind read as caught up (measured: p50 0 against 831 changes).
 */
export const WATCH_BUSY_PROGRESS_INTERVAL_MS = 100;
/**
 * A server stream (Watch, Resync, Snapshot) whose peer takes no message for this long is ended
 * with RESOURCE_EXHAUSTED (`--stream-max-stall-ms`); a watch says where to resume. Until then it
 * holds one message: the next waits until the last reached the connection.
 */
export const DEFAULT_STREAM_MAX_STALL_MS = 30_000;
/** How often watchers of a database shared with other instances (PostgreSQL) look for their commits. */
export const WATCH_SHARED_POLL_INTERVAL_MS = 100;
/** Most concurrent Watch streams one server serves; one more is refused with RESOURCE_EXHAUSTED. */
export const MAX_WATCHERS = 10_000;

// ---------------------------------------------------------------------------------------------
// Followers (contract §9.5)

/** Most changes, and value bytes, a follower applies in one transaction (with its positions). */
export const FOLLOW_BATCH_CHANGES = 256;
export const FOLLOW_BATCH_BYTES = 4 * 1024 * 1024;
/** Changes, and value bytes, a follower holds received but not applied before it stops reading the stream. */
export const FOLLOW_QUEUE_CHANGES = 4_096;
export const FOLLOW_QUEUE_BYTES = 16 * 1024 * 1024;
/** Keys a full copy of the leader reads and writes at once. */
export const FOLLOW_COPY_WINDOW = 32;
/** The delay before the follower tries its leader again after a failure: from the first bound, doubling to the last. */
export const FOLLOW_RETRY_BACKOFF_MS = { initial: 100, max: 5_000 } as const;
/** How long a follower waits for the first message of a watch (where the leader's stores stand). */
export const FOLLOW_FIRST_MESSAGE_MS = 30_000;
