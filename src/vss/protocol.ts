//! The VSS protocol's fixed facts (paths, header, limits) and its errors: what each failure
//! answers on the wire (HTTP status and `ErrorCode`), and how store errors map onto them.

import { ErrorCode } from "../../gen/vss/v1/vss_pb.js";
import { StoreError } from "../store/errors.js";

/**
 * Sent on every response, errors, 405s, 413s and unknown paths included. vss-client-ng 0.6.0
 * (pinned by LDK Node main) declares `const PROTOCOL_VERSION: &str = "0"` in `src/client.rs` and,
 * in `post_request`, returns `VssError::VSSVersionMismatchError` before it looks at the status
 * whenever this header is not exactly that string; LDK Node's `src/io/vss_store.rs` does not
 * retry it, so `VssStore::new` fails. Clients before 0.6.0 (LDK Node 0.7, vss-client 0.4) ignore
 * the header. (An earlier tierkv sent `0.1.0`, the version of the vss-server crate, which no
 * released client accepts.)
 */
export const PROTOCOL_VERSION_HEADER = "vss-protocol-version";
export const PROTOCOL_VERSION = "0";

/** The path prefix LDK Node's base URL ends with (`http://host:port/vss`). */
export const VSS_PATH_PREFIX = "/vss";

/** VSS's own limits. */
export const MAX_VSS_STORE_ID_LENGTH = 120;
export const DEFAULT_LIST_PAGE_SIZE = 100;
export const MAX_LIST_PAGE_SIZE = 100;

/**
 * The key VSS keeps a store's global version under (an ordinary row with an empty value in
 * vss-server). A client's key of that name is that row, as in vss-server; listings never show it.
 */
export const GLOBAL_VERSION_KEY = "global_version";

export type VssErrorKind = "conflict" | "invalid-request" | "too-large" | "method" | "no-such-key" | "auth" | "internal";

const WIRE: Record<VssErrorKind, { status: number; code: ErrorCode }> = {
  conflict: { status: 409, code: ErrorCode.CONFLICT_EXCEPTION },
  "invalid-request": { status: 400, code: ErrorCode.INVALID_REQUEST_EXCEPTION },
  "too-large": { status: 413, code: ErrorCode.INVALID_REQUEST_EXCEPTION },
  method: { status: 405, code: ErrorCode.INVALID_REQUEST_EXCEPTION },
  "no-such-key": { status: 404, code: ErrorCode.NO_SUCH_KEY_EXCEPTION },
  auth: { status: 401, code: ErrorCode.AUTH_EXCEPTION },
  internal: { status: 500, code: ErrorCode.INTERNAL_SERVER_EXCEPTION },
};

/** The message of every 500: the cause goes to the log, never to the caller. */
export const INTERNAL_MESSAGE = "Unknown Server Error occurred.";

/** A failure to answer as VSS does. The message is safe to send (500s send a fixed one). */
export class VssError extends Error {
  override readonly name = "VssError";

  constructor(
    readonly kind: VssErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): number {
    return WIRE[this.kind].status;
  }

  get code(): ErrorCode {
    return WIRE[this.kind].code;
  }

  /** What the caller reads. */
  get publicMessage(): string {
    return this.kind === "internal" ? INTERNAL_MESSAGE : this.message;
  }
}

export const invalidRequest = (message: string): VssError => new VssError("invalid-request", message);

/**
 * A store's failure as VSS reports it. LDK Node's `VssStore` retries every error but
 * NoSuchKey, InvalidRequest and Conflict, for up to 180 s (`retry_policy()` in
 * `src/io/vss_store.rs`), so the status says who must act:
 * - the caller's own mistakes stay 4xx and are not retried: a bad request or a version out of
 *   range (400), bad or missing credentials (401), an absent key (404);
 * - a tenant's quota answers 400 too: it does not clear by itself within the client's retry
 *   window, and a prompt error is what the node (and its operator) can act on; so does a write
 *   to a follower (read-only: the node must be pointed at the leader);
 * - everything else — a full disk, an unreachable database or backup tier, a deadline, a
 *   cancellation, a server setting (`failed-precondition`), a bug — is 500 with a fixed message,
 *   which LDK Node retries; the cause goes to the log only.
 */
export function toVssError(error: unknown): VssError {
  if (error instanceof VssError) return error;
  const cause = StoreError.from(error);
  switch (cause.code) {
    case "invalid-argument":
      return new VssError("invalid-request", cause.message, { cause });
    case "resource-exhausted":
      return cause.reason === "quota" ? new VssError("invalid-request", cause.message, { cause }) : new VssError("internal", cause.message, { cause });
    case "not-found":
      return new VssError("no-such-key", cause.message, { cause });
    case "failed-precondition":
      return cause.reason === "read-only" ? new VssError("invalid-request", cause.message, { cause }) : new VssError("internal", cause.message, { cause });
    case "unauthenticated":
    case "permission-denied":
      return new VssError("auth", cause.message, { cause });
    default:
      return new VssError("internal", cause.message, { cause });
  }
}

/** A key fit for a message: VSS keys may be 600 characters of base64. */
export function showKey(key: string): string {
  return JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
}
