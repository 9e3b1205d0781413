//! A bare grpc-js server on an ephemeral loopback port serving handlers built by `grpcHandlers`
//! over a test implementation, for tests of the RPC edge itself rather than of a store.

import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { grpcServiceDefinition, type CallObserver, type CallOutcome } from "../../src/rpc/service-definition.js";
import type { StoreError } from "../../src/store/errors.js";

export interface ServiceServer {
  /** `127.0.0.1:port`. */
  readonly address: string;
  /** Stops the server at once, cancelling calls still in flight. */
  close(): Promise<void>;
}

/** Serves `handlers` as `service` on 127.0.0.1, port 0. */
export async function startServiceServer(service: DescService, handlers: grpc.UntypedServiceImplementation): Promise<ServiceServer> {
  const server = new grpc.Server();
  server.addService(grpcServiceDefinition(service), handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      server.forceShutdown();
    },
  };
}

/** One report to a CallObserver. */
export interface ObservedCall {
  readonly method: string;
  readonly error: StoreError | undefined;
  readonly seconds: number;
  readonly outcome: CallOutcome;
}

/** A CallObserver that records every report in `calls`. */
export function recordingObserver(): { observe: CallObserver; calls: ObservedCall[] } {
  const calls: ObservedCall[] = [];
  return { calls, observe: { ended: (method, error, seconds, outcome) => void calls.push({ method: method.name, error, seconds, outcome }) } };
}

/** What a test sets on a call. */
export interface CallSettings {
  /** ms from now; 10 s by default, so a broken server fails the test instead of hanging it. */
  readonly timeoutMs?: number;
  readonly metadata?: Record<string, string>;
}

function callArguments<I extends DescMessage, O extends DescMessage>(
  method: DescMethodUnary<I, O> | DescMethodServerStreaming<I, O>,
  settings: CallSettings,
) {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(settings.metadata ?? {})) metadata.set(key, value);
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    serialize: (message: MessageShape<I>): Buffer => Buffer.from(toBinary(method.input, message)),
    deserialize: (bytes: Buffer): MessageShape<O> => fromBinary(method.output, bytes),
    metadata,
    options: { deadline: Date.now() + (settings.timeoutMs ?? 10_000) },
  };
}

/** A unary call through a plain grpc-js client: the call (to cancel it) and its outcome. */
export function unaryCall<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  settings: CallSettings = {},
): { call: grpc.ClientUnaryCall; response: Promise<MessageShape<O>> } {
  const { path, serialize, deserialize, metadata, options } = callArguments(method, settings);
  let call!: grpc.ClientUnaryCall;
  const response = new Promise<MessageShape<O>>((resolve, reject) => {
    call = client.makeUnaryRequest(path, serialize, deserialize, create(method.input, request), metadata, options, (error, value) =>
      error ? reject(error) : resolve(value!),
    );
  });
  return { call, response };
}

/** A server-streaming call through a plain grpc-js client; nothing is read until the test reads. */
export function serverStreamCall<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: DescMethodServerStreaming<I, O>,
  request: MessageInitShape<I>,
  settings: CallSettings = {},
): grpc.ClientReadableStream<MessageShape<O>> {
  const { path, serialize, deserialize, metadata, options } = callArguments(method, settings);
  return client.makeServerStreamRequest(path, serialize, deserialize, create(method.input, request), metadata, options);
}

/** Reads a stream to its end: the messages, and the error it ended with (none when OK). */
export function readAll<T>(stream: grpc.ClientReadableStream<T>): Promise<{ messages: T[]; error?: grpc.ServiceError }> {
  const messages: T[] = [];
  return new Promise((resolve) => {
    stream.on("data", (message: T) => messages.push(message));
    stream.on("error", (error: grpc.ServiceError) => resolve({ messages, error }));
    stream.on("end", () => resolve({ messages }));
  });
}

/** The error `promise` rejects with; fails when it resolves. */
export async function rejection<T>(promise: Promise<T>): Promise<grpc.ServiceError> {
  return promise.then(
    () => {
      throw new Error("the call succeeded");
    },
    (error: grpc.ServiceError) => error,
  );
}
