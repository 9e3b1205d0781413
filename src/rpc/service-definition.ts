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

function unaryMethods(service: DescService): DescMethod[] {
  for (const method of service.methods) {
    if (method.methodKind !== "unary") {
      throw new Error(`${service.typeName}.${method.name}: only unary methods are supported`);
    }
  }
  return service.methods;
}

/** The grpc-js definition of `service`, keyed by each method's local (camelCase) name. */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of unaryMethods(service)) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      originalName: method.name,
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return definition;
}

type MethodOf<S extends DescService> = S["method"][keyof S["method"]];

/** What a handler sees besides the request. */
export interface HandlerContext {
  /** Absolute deadline in ms since the epoch, when the caller set one. */
  readonly deadline?: number;
  /** Request metadata (authorization and friends). */
  readonly metadata: grpc.Metadata;
  /** The caller's address. */
  readonly peer: string;
}

/** A service implementation: one async function per RPC, typed from the generated descriptor. */
export type ServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]: (
    request: MessageShape<S["method"][K]["input"]>,
    context: HandlerContext,
  ) => Promise<MessageInitShape<S["method"][K]["output"]>>;
};

function deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? deadline : undefined;
}

/** Called with every error a handler throws, before it is turned into a status (for logs). */
export type ErrorObserver = (method: string, error: StoreError) => void;

/** Wraps `impl` into grpc-js handlers: errors become statuses through `toGrpcStatus`. */
export function grpcHandlers<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  onError: ErrorObserver = () => {},
): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of unaryMethods(service)) {
    const handler = (impl as Record<string, ServiceImpl<S>[keyof S["method"]]>)[method.localName]!;
    const unary: grpc.handleUnaryCall<MessageShape<MethodOf<S>["input"]>, MessageShape<DescMessage>> = (
      call,
      callback,
    ) => {
      const context: HandlerContext = {
        metadata: call.metadata,
        peer: call.getPeer(),
        ...(deadlineOf(call) !== undefined && { deadline: deadlineOf(call)! }),
      };
      handler(call.request, context).then(
        (response) => callback(null, create(method.output, response as MessageInitShape<DescMessage>)),
        (error: unknown) => {
          const storeError = StoreError.from(error);
          onError(method.name, storeError);
          callback(toGrpcStatus(storeError));
        },
      );
    };
    handlers[method.localName] = unary as grpc.UntypedHandleCall;
  }
  return handlers;
}

/** A grpc-js client class for `service`, with one callback-style method per RPC (local names). */
export function grpcClientConstructor(service: DescService): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.typeName);
}
