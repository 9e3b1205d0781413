//! Turns a protobuf-es service descriptor into grpc-js's service definition, client constructor
//! and server side: the gRPC surface's adapter over the call pipeline (`src/service/call.ts`).
//! An interceptor admits each call from its metadata before grpc-js reads the message; the
//! handler decodes (unknown fields skipped), runs the implementation in the call, and maps its
//! StoreError through `toGrpcStatus`.

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
import { OPEN_PRINCIPAL } from "../auth/principal.js";
import { DEFAULT_LIMITS, type Limits } from "../limits.js";
import { decodeBinary } from "../service/body.js";
import { Call, cancellationOf, subjectOf, type CallContext, type CallMethod, type CallObserver } from "../service/call.js";
import type { HeaderGetter } from "../service/span.js";
import { StoreError, streamStalled } from "../store/errors.js";
import { DEFAULT_STREAM_MAX_STALL_MS } from "../limits.js";
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

/**
 * The server side of `deserializer`, decoding within `limits` (fields counted first): never
 * throws, so grpc-js hands every request to the handler.
 */
function requestDeserializer<Desc extends DescMessage>(schema: Desc, limits: Limits): (bytes: Buffer) => MessageShape<Desc> | UndecodableRequest {
  return (bytes) => {
    try {
      return decodeBinary(schema, bytes, limits);
    } catch (error) {
      return new UndecodableRequest(StoreError.from(error));
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

/**
 * The grpc-js definition of `service`, keyed by each method's local (camelCase) name; a server
 * decodes requests within its `limits` (a client never decodes one).
 */
export function grpcServiceDefinition(service: DescService, limits: Limits = DEFAULT_LIMITS): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of supportedMethods(service)) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      originalName: method.name,
      requestSerialize: serializer(method.input),
      requestDeserialize: requestDeserializer(method.input, limits),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return definition;
}

export type { CallMethod as RpcMethod, CallObserver, CallOutcome, CallSubject } from "../service/call.js";

/** What a handler sees besides the request: the pipeline's call context, the same on every surface. */
export type HandlerContext = CallContext;

/** Reads trace context from a call's metadata. */
function metadataHeader(metadata: grpc.Metadata): HeaderGetter {
  return (name) => {
    const [value] = metadata.get(name);
    return typeof value === "string" ? value : undefined;
  };
}

/** The credentials a gRPC call presented: its authorization metadata and TLS client certificate. */
function credentialsOf(metadata: grpc.Metadata, auth: ReturnType<ServerCall["getAuthContext"]>): Credentials {
  const authorization = metadata.get("authorization")[0];
  return {
    ...(typeof authorization === "string" && { authorization }),
    peerCertificate: auth.sslPeerCertificate,
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

function deadlineOf(deadline: grpc.Deadline): number | undefined {
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? deadline : undefined;
}

/**
 * Writes `message`: true once it was written to the connection (or the call was cancelled), false
 * when the peer took nothing for `maxStallMs`.
 */
function flushed(serverCall: grpc.ServerWritableStream<unknown, unknown>, message: unknown, signal: AbortSignal, maxStallMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true);
    const done = (written: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", cancelled);
      resolve(written);
    };
    const cancelled = (): void => done(true);
    const timer = setTimeout(() => done(false), maxStallMs);
    signal.addEventListener("abort", cancelled, { once: true });
    serverCall.write(message, () => done(true));
  });
}

/** The gRPC surface of one server: its handlers, and the interceptor that admits their calls. */
export interface GrpcSurface {
  /** grpc-js handlers for `impl`: each call runs through the pipeline. */
  handlers<S extends DescService>(service: S, impl: ServiceImpl<S>): grpc.UntypedServiceImplementation;
  /**
   * Authenticates a call of these handlers from its metadata before grpc-js reads its message
   * (the stream stays paused until then): a refused call is answered at once, its body never
   * buffered or decoded. Other services (health, reflection) pass through.
   */
  readonly interceptor: grpc.ServerInterceptor;
}

/**
 * Errors become statuses through `toGrpcStatus`; anything else a handler throws (synchronously or
 * not) becomes INTERNAL "internal error" and reaches `observe` with its cause; a cancelled call
 * aborts the handler's signal and closes its response generator.
 */
export function grpcSurface(
  observe: CallObserver = { ended() {} },
  authenticate: Authenticate = OPEN,
  maxStallMs: number = DEFAULT_STREAM_MAX_STALL_MS,
): GrpcSurface {
  const methods = new Map<string, CallMethod>();
  /** Calls the interceptor admitted, by the metadata object grpc-js hands on to the handler. */
  const admitted = new WeakMap<grpc.Metadata, Call>();

  const interceptor: grpc.ServerInterceptor = (descriptor, next) => {
    const method = methods.get(descriptor.path);
    if (method === undefined) return new grpc.ServerInterceptingCall(next);
    let call: Call | undefined;
    return new grpc.ServerInterceptingCall(next, {
      start(startNext) {
        startNext({
          onReceiveMetadata(metadata, metadataNext) {
            const current = new Call(method, observe, metadataHeader(metadata), deadlineOf(next.getDeadline()));
            call = current;
            current.admit(authenticate, credentialsOf(metadata, next.getAuthContext())).then(
              () => {
                admitted.set(metadata, current);
                metadataNext(metadata);
              },
              (error: unknown) => {
                const status = toGrpcStatus(current.end(error)!);
                next.sendStatus({ code: status.code!, details: status.details ?? "" });
              },
            );
          },
          onCancel() {
            const cancelled = call;
            cancelled?.cancel(() => cancellationOf(cancelled.deadline));
          },
        });
      },
    });
  };

  /** A call of a server without the interceptor: admitted in its handler, after grpc-js read its message. */
  const newCall = (serverCall: ServerCall, method: CallMethod): Call => {
    const call = new Call(method, observe, metadataHeader(serverCall.metadata), deadlineOf(serverCall.getDeadline()));
    // grpc-js emits 'cancelled' after every call, answered or not: the Call ignores it once ended.
    serverCall.once("cancelled", () => call.cancel(() => cancellationOf(call.deadline)));
    return call;
  };

  const handlers = <S extends DescService>(service: S, impl: ServiceImpl<S>): grpc.UntypedServiceImplementation => {
    const result: grpc.UntypedServiceImplementation = {};
    for (const method of supportedMethods(service)) {
      const handler = (impl as unknown as Record<string, AnyHandler>)[method.localName]!;
      const rpc: CallMethod = { service: service.typeName, name: method.name, type: method.methodKind === "server_streaming" ? "server_stream" : "unary", surface: "grpc" };
      methods.set(`/${service.typeName}/${method.name}`, rpc);
      const respond = (response: unknown): MessageShape<DescMessage> =>
        create(method.output, response as MessageInitShape<DescMessage>);
      /** The admitted call and its decoded request; throws the status to answer when refused. */
      const begin = async (serverCall: ServerCall): Promise<{ call: Call; request: unknown } | Partial<grpc.StatusObject>> => {
        const known = admitted.get(serverCall.metadata);
        const call = known ?? newCall(serverCall, rpc);
        if (known === undefined) {
          try {
            await call.admit(authenticate, credentialsOf(serverCall.metadata, serverCall.getAuthContext()));
          } catch (error) {
            return toGrpcStatus(call.end(error)!);
          }
        }
        const request = serverCall.request;
        call.about(() => subjectOf(call.principal, request));
        return { call, request };
      };

      if (method.methodKind === "server_streaming") {
        const streaming: grpc.handleServerStreamingCall<unknown, unknown> = (serverCall) => {
          void (async () => {
            const begun = await begin(serverCall);
            if (!("call" in begun)) return void serverCall.emit("error", begun);
            const { call, request } = begun;
            try {
              await call.run(async () => {
                if (request instanceof UndecodableRequest) throw request.error;
                const responses = (handler(request, call) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
                try {
                  for (let next = await responses.next(); !next.done && !call.cancelled; ) {
                    // Each message waits until it reached the connection, so a peer that stops
                    // reading holds the handler (and its memory) at one message; past the stall
                    // limit the handler is told (it may say where to resume) and the call ends.
                    const written = await flushed(serverCall, respond(next.value), call.signal, maxStallMs);
                    if (call.cancelled) break;
                    next = written ? await responses.next() : await responses.throw!(streamStalled(maxStallMs));
                  }
                } finally {
                  // Its finally blocks run however the loop ended; a no-op for a finished generator.
                  await responses.return?.();
                }
              });
            } catch (error) {
              const status = toGrpcStatus(call.end(error)!);
              if (!call.cancelled) serverCall.emit("error", status);
              return;
            }
            call.end();
            if (!call.cancelled) serverCall.end();
          })();
        };
        result[method.localName] = streaming as grpc.UntypedHandleCall;
      } else {
        const unary: grpc.handleUnaryCall<unknown, unknown> = (serverCall, callback) => {
          // An async function, so a handler that throws synchronously and a response that cannot
          // be built are caught like a rejection instead of escaping to grpc-js or the process.
          void (async () => {
            const begun = await begin(serverCall);
            if (!("call" in begun)) return callback(begun);
            const { call, request } = begun;
            let response: MessageShape<DescMessage>;
            try {
              response = await call.run(async () => {
                if (request instanceof UndecodableRequest) throw request.error;
                return respond(await handler(request, call));
              });
            } catch (error) {
              callback(toGrpcStatus(call.end(error)!));
              return;
            }
            call.end();
            callback(null, response);
          })();
        };
        result[method.localName] = unary as grpc.UntypedHandleCall;
      }
    }
    return result;
  };
  return { handlers, interceptor };
}

/**
 * grpc-js handlers for `impl` without the admitting interceptor: each call is authenticated in
 * its handler, after grpc-js read its message. For servers that take no credentials (tests).
 */
export function grpcHandlers<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  observe: CallObserver = { ended() {} },
  authenticate: Authenticate = OPEN,
): grpc.UntypedServiceImplementation {
  return grpcSurface(observe, authenticate).handlers(service, impl);
}

/** A grpc-js client class for `service`, with one callback-style method per RPC (local names). */
export function grpcClientConstructor(service: DescService): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.typeName);
}
