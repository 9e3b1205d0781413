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
import { StoreError } from "../store/errors.js";
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
}

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

function deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? deadline : undefined;
}

/**
 * Called when a call ends: its method name, the error it failed with (before it becomes a
 * status), and how long it took. For logs and metrics.
 */
export type CallObserver = (method: string, error: StoreError | undefined, seconds: number) => void;

function contextOf(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): HandlerContext {
  const deadline = deadlineOf(call);
  return { metadata: call.metadata, ...(deadline !== undefined && { deadline }) };
}

/**
 * Wraps `impl` into grpc-js handlers: errors become statuses through `toGrpcStatus`, and anything
 * else a handler throws (synchronously or not) becomes INTERNAL "internal error" and reaches
 * `observe` with its cause.
 */
export function grpcHandlers<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  observe: CallObserver = () => {},
): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of supportedMethods(service)) {
    const handler = (impl as unknown as Record<string, AnyHandler>)[method.localName]!;
    const elapsed = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e9;
    const fail = (error: unknown, started: bigint): Partial<grpc.StatusObject> => {
      const storeError = StoreError.from(error);
      observe(method.name, storeError, elapsed(started));
      return toGrpcStatus(storeError);
    };
    const respond = (response: unknown): MessageShape<DescMessage> =>
      create(method.output, response as MessageInitShape<DescMessage>);

    if (method.methodKind === "server_streaming") {
      const streaming: grpc.handleServerStreamingCall<unknown, unknown> = (call) => {
        void (async () => {
          const started = process.hrtime.bigint();
          let cancelled = false;
          call.once("cancelled", () => (cancelled = true));
          try {
            if (call.request instanceof UndecodableRequest) throw call.request.error;
            for await (const response of handler(call.request, contextOf(call)) as AsyncIterable<unknown>) {
              if (cancelled) return;
              if (!call.write(respond(response))) await new Promise((resolve) => call.once("drain", resolve));
            }
            call.end();
            observe(method.name, undefined, elapsed(started));
          } catch (error) {
            call.emit("error", fail(error, started));
          }
        })();
      };
      handlers[method.localName] = streaming as grpc.UntypedHandleCall;
    } else {
      const unary: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
        const started = process.hrtime.bigint();
        // An async function, so a handler that throws synchronously and a response that cannot
        // be built are caught like a rejection instead of escaping to grpc-js or the process.
        void (async () => {
          let response: MessageShape<DescMessage>;
          try {
            if (call.request instanceof UndecodableRequest) throw call.request.error;
            response = respond(await handler(call.request, contextOf(call)));
          } catch (error) {
            callback(fail(error, started));
            return;
          }
          callback(null, response);
          observe(method.name, undefined, elapsed(started));
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
