//! One call on any surface (gRPC, Connect, gRPC-Web, VSS), from its start to its answer: the
//! context a handler sees, credentials checked before the body is read, the call's span, its
//! cancellation and the one report to the observer (metrics, the debug line). Surfaces are
//! adapters around it: they read, decode and encode; the rules of a call live here.

import type { Authenticate, Credentials } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import { startServerSpan, type HeaderGetter, type ServerSpan } from "./span.js";
import { StoreError } from "../store/errors.js";
import { formatPath } from "../store/validate.js";

/** Where a call came in: the gRPC port, Connect (JSON or binary), gRPC-Web, or the VSS protocol. */
export type Surface = "grpc" | "connect" | "grpc-web" | "vss";

/** Which method a call is, as grpc-prometheus labels it, and on which surface. */
export interface CallMethod {
  /** Fully qualified service name, `tierkv.v1.KVStoreService`; `vss` for the VSS protocol. */
  readonly service: string;
  /** The method's name: `Read`, or VSS's `getObject`. */
  readonly name: string;
  readonly type: "unary" | "server_stream";
  readonly surface: Surface;
}

/**
 * How a call ended: answered (`ok`), answered with an error (`failed`, including a deadline that
 * passed), or `cancelled` before it was answered (the caller went away, or the server cancelled
 * it at shutdown).
 */
export type CallOutcome = "ok" | "failed" | "cancelled";

/** What a call was about, for debug logs: never values or credentials. */
export interface CallSubject {
  /** The store the call touched: the one the request names, else the caller's. */
  readonly store: string;
  /** `primary/secondary/key` (or the namespace) when the request names one. */
  readonly path?: string;
}

/** Told of each call, for logs and metrics. */
export interface CallObserver {
  /** The call started (before authentication). */
  started?(method: CallMethod): void;
  /**
   * Called once when the call ends: the error it failed with (before it becomes the surface's
   * answer; for a cancelled call, why it was cancelled), how long it took and its outcome.
   * `subject` says what the call was about; it is worked out only when called.
   */
  ended(method: CallMethod, error: StoreError | undefined, seconds: number, outcome: CallOutcome, subject?: () => CallSubject): void;
}

/** What a handler sees besides the request: the same on every surface. */
export interface CallContext {
  /** Who is calling, authenticated before the request's body was read. */
  readonly principal: Principal;
  /** Absolute deadline in ms since the epoch, when the caller set one. */
  readonly deadline?: number;
  /**
   * Aborts when the call ends before it was answered: the caller cancelled or went away, or its
   * deadline passed. The reason is a StoreError (`deadline-exceeded` or `unavailable`).
   */
  readonly signal: AbortSignal;
  readonly surface: Surface;
  readonly method: CallMethod;
}

/** `rpc.system` of each surface's spans (OpenTelemetry's names where it has one). */
const RPC_SYSTEM: Record<Surface, string> = { grpc: "grpc", connect: "connect_rpc", "grpc-web": "grpc_web", vss: "vss" };

/** The path a request names, if it names one (most KVStoreService requests do). */
function pathOf(request: unknown): string | undefined {
  const fields = request as { primaryNamespace?: unknown; secondaryNamespace?: unknown; key?: unknown };
  if (typeof fields?.primaryNamespace !== "string" || typeof fields.secondaryNamespace !== "string") return undefined;
  return formatPath({ primaryNamespace: fields.primaryNamespace, secondaryNamespace: fields.secondaryNamespace, ...(typeof fields.key === "string" && { key: fields.key }) });
}

/** What a tierkv request is about: the store it names (an admin reading another's), else the caller's. */
export function subjectOf(principal: Principal, request: unknown): CallSubject {
  const named = (request as { storeId?: unknown } | undefined)?.storeId;
  const path = pathOf(request);
  return { store: typeof named === "string" && named !== "" ? named : principal.storeId, ...(path !== undefined && { path }) };
}

/**
 * One call's bookkeeping. Created when the call starts (headers known, body not read); `admit`
 * authenticates; `run` runs the work in the call's span; `end` reports once and returns the
 * error the surface maps onto its wire.
 */
export class Call implements CallContext {
  /**
   * Who calls: set by `admit`, which runs before the body is read. No default: a path that
   * reached work unauthenticated would fail on `undefined` instead of acting as someone.
   */
  principal!: Principal;
  readonly surface: Surface;
  private readonly started = process.hrtime.bigint();
  private readonly span: ServerSpan;
  /** Why the call was cancelled before it was answered, once it was. */
  private cancellation: StoreError | undefined;
  private answered = false;
  /**
   * Made on first use of `signal`: most calls (a read of a local store) never wait on anything
   * cancellable, and an AbortController costs more than the rest of this bookkeeping together.
   */
  private controller: AbortController | undefined;
  private subject: (() => CallSubject) | undefined;

  constructor(
    readonly method: CallMethod,
    private readonly observe: CallObserver,
    header: HeaderGetter,
    readonly deadline?: number,
  ) {
    this.surface = method.surface;
    observe.started?.(method);
    this.span = startServerSpan(`${method.service}/${method.name}`, RPC_SYSTEM[method.surface], header);
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.cancellation !== undefined) this.controller.abort(this.cancellation);
    }
    return this.controller.signal;
  }

  get cancelled(): boolean {
    return this.cancellation !== undefined;
  }

  /** `end` has run: the call is reported. */
  get ended(): boolean {
    return this.answered;
  }

  /**
   * The call ended before its answer (the caller went away, a deadline, shutdown). Ignored once
   * ended, and `why` is asked only then: grpc-js and connect-es report a close after every call
   * (grpc-js 1.14.7 build/src/server-interceptors.js:366-381: BaseServerInterceptingCall's
   * 'close' handler calls notifyOnCancel on every stream close; connect-es 2.1.1
   * dist/esm/protocol-connect/handler-factory.js:147: createUnaryHandler aborts the call's signal
   * once answered), and an error (its stack captured)
   * would cost more than the rest of the call's bookkeeping.
   */
  cancel(why: () => StoreError): void {
    if (this.answered || this.cancellation !== undefined) return;
    this.cancellation = why();
    this.controller?.abort(this.cancellation);
  }

  /** Who calls, from the credentials alone (headers and TLS peer): the body is not read yet. */
  async admit(authenticate: Authenticate, credentials: Credentials): Promise<Principal> {
    const principal = await authenticate(credentials);
    this.principal = principal;
    this.span.setAttribute("tierkv.store", principal.storeId);
    this.subject ??= () => ({ store: principal.storeId });
    return principal;
  }

  /** What the call is about, once its request is decoded (for the debug line). */
  about(subject: () => CallSubject): void {
    this.subject = subject;
  }

  /** Runs `work` inside the call's span. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return this.span.run(work);
  }

  /**
   * The call ended: answered (`error` undefined) or failed. Reports once, ends the span, and
   * returns the StoreError the surface maps onto its own wire (anything not a StoreError is
   * `internal`).
   */
  end(error?: unknown): StoreError | undefined {
    const storeError = error === undefined ? undefined : StoreError.from(error);
    if (this.answered) return storeError;
    this.answered = true;
    const seconds = Number(process.hrtime.bigint() - this.started) / 1e9;
    this.span.end(storeError);
    const reason = this.cancellation;
    if (reason !== undefined) {
      // Why it was cancelled, with what the work did after it (often: failed because of it).
      const outcome = reason.code === "deadline-exceeded" ? "failed" : "cancelled";
      this.observe.ended(this.method, new StoreError(reason.code, reason.message, { cause: storeError }), seconds, outcome, this.subject);
    } else {
      this.observe.ended(this.method, storeError, seconds, storeError === undefined ? "ok" : "failed", this.subject);
    }
    return storeError;
  }
}

/**
 * grpc-js's deadline timer and `Date.now()` run on different clocks, so the timer can fire a
 * little before the deadline by our reckoning; a cancellation this close to it is the deadline's.
 */
const DEADLINE_SLACK_MS = 50;

/** Why a call the transport reported as cancelled ended: its deadline, or anything else. */
export function cancellationOf(deadline: number | undefined): StoreError {
  if (deadline !== undefined && Date.now() >= deadline - DEADLINE_SLACK_MS) {
    return new StoreError("deadline-exceeded", "the call's deadline passed before it was answered");
  }
  return new StoreError("unavailable", "the call was cancelled before it was answered");
}
