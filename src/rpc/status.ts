//! The one mapping between store error codes and gRPC status codes, in both directions.

import { status, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import { StoreError, type StoreErrorCode } from "../store/errors.js";

const TO_GRPC: Record<StoreErrorCode, status> = {
  "invalid-argument": status.INVALID_ARGUMENT,
  "not-found": status.NOT_FOUND,
  "resource-exhausted": status.RESOURCE_EXHAUSTED,
  "failed-precondition": status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  "deadline-exceeded": status.DEADLINE_EXCEEDED,
  cancelled: status.CANCELLED,
  unauthenticated: status.UNAUTHENTICATED,
  "permission-denied": status.PERMISSION_DENIED,
  internal: status.INTERNAL,
  "out-of-range": status.OUT_OF_RANGE,
};

const FROM_GRPC = new Map<status, StoreErrorCode>(
  Object.entries(TO_GRPC).map(([code, grpcCode]) => [grpcCode, code as StoreErrorCode]),
);

/**
 * Each code's name as grpc-go spells it (`codes.Code.String()`), which grpc-prometheus and
 * go-grpc-middleware put in the `grpc_code` label; dashboards written for them match ours.
 */
const CODE_NAMES: Record<StoreErrorCode, string> = {
  "invalid-argument": "InvalidArgument",
  "not-found": "NotFound",
  "resource-exhausted": "ResourceExhausted",
  "failed-precondition": "FailedPrecondition",
  unavailable: "Unavailable",
  "deadline-exceeded": "DeadlineExceeded",
  cancelled: "Canceled",
  unauthenticated: "Unauthenticated",
  "permission-denied": "PermissionDenied",
  internal: "Internal",
  "out-of-range": "OutOfRange",
};

/** The grpc-go name of the status answered for `error` (`OK` for none). */
export function grpcCodeName(error: StoreError | undefined): string {
  return error === undefined ? "OK" : CODE_NAMES[error.code];
}

/** The status a server answers for `error`. Only the message travels: never a stack trace. */
export function toGrpcStatus(error: StoreError): Partial<StatusObject> {
  return { code: TO_GRPC[error.code], details: error.message };
}

/** The StoreError for a status code and message a server reported (e.g. per mutation of a batch). */
export function fromStatus(code: number, message: string): StoreError {
  return new StoreError(FROM_GRPC.get(code as status) ?? "internal", message);
}

/** Codes whose message comes from the transport, not the server: they get the peer as context. */
const TRANSPORT_CODES: ReadonlySet<StoreErrorCode> = new Set(["unavailable", "deadline-exceeded", "internal"]);

/**
 * The StoreError a client raises for a failed call; `peer` names the server in transport errors.
 * Statuses without a store equivalent (CANCELLED, ABORTED, ...) are reported as `unavailable`
 * when transient, else `internal`.
 */
export function fromGrpcError(error: ServiceError, peer: string): StoreError {
  // A call the transport cancelled (a closed channel, a peer gone) is worth retrying.
  const mapped = error.code === status.CANCELLED ? "unavailable" : FROM_GRPC.get(error.code);
  const transient = error.code === status.ABORTED;
  const code = mapped ?? (transient ? "unavailable" : "internal");
  // grpc-js ends some connection errors with an empty "Resolution note:"; drop it.
  const details = (error.details || status[error.code] || "unknown error").replace(/\s*Resolution note:\s*$/, "");
  const message = TRANSPORT_CODES.has(code) ? `tierkv at ${peer}: ${details}` : details;
  return new StoreError(code, message, { cause: error });
}
