//! Turns a protobuf-es service descriptor into grpc-js's service definition, server handlers and
//! client constructor, so no method is ever listed by hand.

import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { Authenticate, Credentials } from "../auth/authenticator.js";
import { OPEN_PRINCIPAL, type Principal } from "../auth/principal.js";
import { StoreError } from "../store/errors.js";
import { formatPath } from "../store/validate.js";
import { inServerSpan } from "./tracing.js";
import { toGrpcStatus } from "./status.js";

function serializer<Desc extends DescMessage>(schema: Desc): (message: MessageShape<Desc>) => Buffer {
  return (message) => {
    const bytes = toBinary(schema, message);
    // A view, not a copy: values can be tens of MB.
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<Desc extends DescMessage>(schema: Desc): (bytes: Buffer) => MessageShape<Desc> {
  return (bytes) => fromBinary(schema, bytes);
}

/**
 * What the server's deserializer returns for bytes that are not a valid request. grpc-js answers
 * a deserializer that throws with INTERNAL "Error deserializing request", but a bad request is the
 * caller's fault: the handler wrapper answers this marker with INVALID_ARGUMENT instead.
 */
class UndecodableRequest {
  constructor(readonly error: StoreError) {}
}

/** The server side of `deserializer`: never throws, so grpc-js hands every request to the handler. */
function requestDeserializer<Desc extends DescMessage>(schema: Desc): (bytes: Buffer) => MessageShape<Desc> | UndecodableRequest {
  return (bytes) => {
    try {
      return fromBinary(schema, bytes);
    } catch (error) {
      // protobuf-es's reasons ("premature EOF", "invalid varint", ...) help the caller and carry
      // nothing about the server.
      const reason = error instanceof Error ? `: ${error.message}` : "";
      const message = `request is not a valid ${schema.typeName} message${reason}`;
      return new UndecodableRequest(new StoreError("invalid-argument", message, { cause: error }));
    }
  };
}

/** The methods of `service`; only unary and server-streaming RPCs are supported. */
function supportedMethods(service: DescService): DescMethod[] {
  for (const method of service.methods) {
    if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
      throw new Error(`${service.typeName}.${method.name}: ${method.methodKind} methods are not supported`);
    }
  }
  return service.methods;
}

/** The grpc-js definition of `service`, keyed by each method's local (camelCase) name. */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of supportedMethods(service)) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      originalName: method.name,
      requestSerialize: serializer(method.input),
      requestDeserialize: requestDeserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return definition;
}

/** What a handler sees besides the request. */
export interface HandlerContext {
  /** Absolute deadline in ms since the epoch, when the caller set one. */
  readonly deadline?: number;
  /** Request metadata (authorization and friends). */
  readonly metadata: grpc.Metadata;
  /**
   * Aborts when the call ends before the handler answered: the caller cancelled or went away, or
   * its deadline passed. The reason is a StoreError (`deadline-exceeded` or `unavailable`).
   */
  readonly signal: AbortSignal;
  /** Who is calling, authenticated before the handler runs. */
  readonly principal: Principal;
}

/** The credentials a gRPC call presented: its authorization metadata and TLS client certificate. */
function credentialsOf(call: ServerCall): Credentials {
  const authorization = call.metadata.get("authorization")[0];
  return {
    ...(typeof authorization === "string" && { authorization }),
    peerCertificate: call.getAuthContext().sslPeerCertificate,
  };
}

/** Open mode: every caller is the open principal (tests and servers without auth). */
const OPEN: Authenticate = async () => OPEN_PRINCIPAL;

/**
 * A service implementation, typed from the generated descriptor: per RPC an async function
 * (unary) or an async generator of responses (server streaming).
 */
export type ServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]: (
    request: MessageShape<S["method"][K]["input"]>,
    context: HandlerContext,
  ) => S["method"][K]["methodKind"] extends "server_streaming"
    ? AsyncIterable<MessageInitShape<S["method"][K]["output"]>>
    : Promise<MessageInitShape<S["method"][K]["output"]>>;
};

type AnyHandler = (request: unknown, context: HandlerContext) => Promise<unknown> | AsyncIterable<unknown>;

type ServerCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

function deadlineOf(call: ServerCall): number | undefined {
  const deadline = call.getDeadline();
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? deadline : undefined;
}

/**
 * How a call ended: answered (`ok`), answered with an error status (`failed`, including a
 * deadline that passed), or `cancelled` before it was answered (the caller went away, or the
 * server cancelled it at shutdown).
 */
export type CallOutcome = "ok" | "failed" | "cancelled";

/** Which RPC a call is, as grpc-prometheus labels it. */
export interface RpcMethod {
  /** Fully qualified service name, `tierkv.v1.KVStoreService`. */
  readonly service: string;
  /** The RPC's name, `Read`. */
  readonly name: string;
  readonly type: "unary" | "server_stream";
}

/** Told of each call, for logs and metrics. */
export interface CallObserver {
  /** The call reached its handler (before authentication). */
  started?(method: RpcMethod): void;
  /**
   * Called once when the call ends: the error it failed with (before it becomes a status; for a
   * cancelled call, why it was cancelled), how long it took and its outcome. `subject` says what
   * the call was about; it is worked out only when called (debug logs and failures), not on
   * every call.
   */
  ended(method: RpcMethod, error: StoreError | undefined, seconds: number, outcome: CallOutcome, subject?: () => CallSubject): void;
}

/** What a call was about, for debug logs: never values or credentials. */
export interface CallSubject {
  readonly store: string;
  /** `primary/secondary/key` (or the namespace) when the request names one. */
  readonly path?: string;
}

/** The path a request names, if it names one (most KVStoreService requests do). */
function pathOf(request: unknown): string | undefined {
  const fields = request as { primaryNamespace?: unknown; secondaryNamespace?: unknown; key?: unknown };
  if (typeof fields.primaryNamespace !== "string" || typeof fields.secondaryNamespace !== "string") return undefined;
  return formatPath({ primaryNamespace: fields.primaryNamespace, secondaryNamespace: fields.secondaryNamespace, ...(typeof fields.key === "string" && { key: fields.key }) });
}

/**
 * grpc-js's deadline timer and `Date.now()` run on different clocks, so the timer can fire a
 * little before the deadline by our reckoning; a cancellation this close to it is the deadline's.
 */
const DEADLINE_SLACK_MS = 50;

/** Why a call grpc-js reported as cancelled ended: the deadline, or anything else. */
function cancellationOf(deadline: number | undefined): StoreError {
  if (deadline !== undefined && Date.now() >= deadline - DEADLINE_SLACK_MS) {
    return new StoreError("deadline-exceeded", "the call's deadline passed before it was answered");
  }
  return new StoreError("unavailable", "the call was cancelled before it was answered");
}

/**
 * One call's bookkeeping, from the handler's start until the call is answered or cancelled: its
 * duration, its cancellation, the one report to the observer; and the handler's context.
 */
class CallScope implements HandlerContext {
  readonly deadline: number | undefined;
  readonly metadata: grpc.Metadata;
  /**
   * Who calls: set by `identified`, which runs before the handler. No default: a path that reached
   * a handler unauthenticated would fail on `undefined` instead of acting as someone.
   */
  principal!: Principal;
  private readonly started = process.hrtime.bigint();
  /** Why the call was cancelled before it was answered, once it was. */
  private cancellation: StoreError | undefined;
  /**
   * Made on first use of `signal`: most calls (a read of a local store) never wait on anything
   * cancellable, and an AbortController costs more than the rest of this bookkeeping together.
   */
  private controller: AbortController | undefined;
  // grpc-js emits 'cancelled' after every call, answered or not: only one before the answer counts.
  private readonly onCancelled = (): void => {
    this.cancellation = cancellationOf(this.deadline);
    this.controller?.abort(this.cancellation);
  };

  constructor(
    private readonly call: ServerCall,
    private readonly method: RpcMethod,
    private readonly observe: CallObserver,
  ) {
    observe.started?.(method);
    this.deadline = deadlineOf(call);
    this.metadata = call.metadata;
    call.once("cancelled", this.onCancelled);
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.cancellation !== undefined) this.controller.abort(this.cancellation);
    }
    return this.controller.signal;
  }

  /** Set once the caller is known: what the call is about, for the observer. */
  private subject: (() => CallSubject) | undefined;

  identified(principal: Principal, request: unknown): void {
    this.principal = principal;
    this.subject = () => {
      const path = pathOf(request);
      return { store: principal.storeId, ...(path !== undefined && { path }) };
    };
  }

  get cancelled(): boolean {
    return this.cancellation !== undefined;
  }

  /** Resolves once the stream can take more, or at once when the call is cancelled (it never drains then). */
  drained(): Promise<void> {
    const { signal } = this;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        this.call.off("drain", done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.call.once("drain", done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** The handler answered. */
  succeeded(): void {
    this.end(undefined);
  }

  /** The handler failed with `error`: returns the status to answer (moot when cancelled). */
  failed(error: unknown): Partial<grpc.StatusObject> {
    const storeError = StoreError.from(error);
    this.end(storeError);
    return toGrpcStatus(storeError);
  }

  private end(error: StoreError | undefined): void {
    this.call.off("cancelled", this.onCancelled);
    const seconds = Number(process.hrtime.bigint() - this.started) / 1e9;
    const reason = this.cancellation;
    if (reason !== undefined) {
      // Why it was cancelled, with what the handler did after it (often: failed because of it).
      const outcome = reason.code === "deadline-exceeded" ? "failed" : "cancelled";
      this.observe.ended(this.method, new StoreError(reason.code, reason.message, { cause: error }), seconds, outcome, this.subject);
    } else {
      this.observe.ended(this.method, error, seconds, error === undefined ? "ok" : "failed", this.subject);
    }
  }
}

/**
 * Wraps `impl` into grpc-js handlers: errors become statuses through `toGrpcStatus`, anything
 * else a handler throws (synchronously or not) becomes INTERNAL "internal error" and reaches
 * `observe` with its cause, and a cancelled call aborts the handler's signal and closes its
 * response generator.
 */
export function grpcHandlers<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  observe: CallObserver = { ended() {} },
  authenticate: Authenticate = OPEN,
): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of supportedMethods(service)) {
    const handler = (impl as unknown as Record<string, AnyHandler>)[method.localName]!;
    const spanName = `${service.typeName}/${method.name}`;
    const rpc: RpcMethod = { service: service.typeName, name: method.name, type: method.methodKind === "server_streaming" ? "server_stream" : "unary" };
    const respond = (response: unknown): MessageShape<DescMessage> =>
      create(method.output, response as MessageInitShape<DescMessage>);

    if (method.methodKind === "server_streaming") {
      const streaming: grpc.handleServerStreamingCall<unknown, unknown> = (call) => {
        const scope = new CallScope(call, rpc, observe);
        void (async () => {
          try {
            await inServerSpan(spanName, call.metadata, async (span) => {
              // Who calls is settled before the body is looked at (VSS's Authorizer does the same).
              const principal = await authenticate(credentialsOf(call));
              span.setAttribute("tierkv.store", principal.storeId);
              scope.identified(principal, call.request);
              if (call.request instanceof UndecodableRequest) throw call.request.error;
              // Leaving this loop early calls the generator's return(), so its finally blocks run.
              for await (const response of handler(call.request, scope) as AsyncIterable<unknown>) {
                if (scope.cancelled) break;
                if (!call.write(respond(response))) await scope.drained();
                if (scope.cancelled) break;
              }
            });
          } catch (error) {
            const status = scope.failed(error);
            if (!scope.cancelled) call.emit("error", status);
            return;
          }
          scope.succeeded();
          if (!scope.cancelled) call.end();
        })();
      };
      handlers[method.localName] = streaming as grpc.UntypedHandleCall;
    } else {
      const unary: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
        const scope = new CallScope(call, rpc, observe);
        // An async function, so a handler that throws synchronously and a response that cannot
        // be built are caught like a rejection instead of escaping to grpc-js or the process.
        void (async () => {
          let response: MessageShape<DescMessage>;
          try {
            response = await inServerSpan(spanName, call.metadata, async (span) => {
              const principal = await authenticate(credentialsOf(call));
              span.setAttribute("tierkv.store", principal.storeId);
              scope.identified(principal, call.request);
              if (call.request instanceof UndecodableRequest) throw call.request.error;
              return respond(await handler(call.request, scope));
            });
          } catch (error) {
            callback(scope.failed(error));
            return;
          }
          scope.succeeded();
          callback(null, response);
        })();
      };
      handlers[method.localName] = unary as grpc.UntypedHandleCall;
    }
  }
  return handlers;
}

/** A grpc-js client class for `service`, with one callback-style method per RPC (local names). */
export function grpcClientConstructor(service: DescService): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.typeName);
}
