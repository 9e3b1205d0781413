//! The VSS HTTP listener (`--vss-listen`): POST /vss/getObject, /vss/putObjects,
//! /vss/deleteObject and /vss/listKeyVersions, each with a protobuf request body and a protobuf
//! response body (application/octet-stream).
//!
//! Per request: path, method, authentication (before the body is read), the body (up to the
//! gRPC message limit; 413 past it), decoding (400 when it fails), the operation. Every response
//! carries `vss-protocol-version`; every error is an encoded ErrorResponse (500s with a fixed
//! message, their cause logged).

import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  DeleteObjectRequestSchema,
  DeleteObjectResponseSchema,
  ErrorResponseSchema,
  GetObjectRequestSchema,
  GetObjectResponseSchema,
  ListKeyVersionsRequestSchema,
  ListKeyVersionsResponseSchema,
  PutObjectRequestSchema,
  PutObjectResponseSchema,
} from "../../gen/vss/v1/vss_pb.js";
import type { Authenticate, Credentials } from "../auth/authenticator.js";
import { OPEN_PRINCIPAL, type Principal } from "../auth/principal.js";
import { messageLimitBytes, type Limits } from "../limits.js";
import type { Logger } from "../log.js";
import type { CallOptions, KVStore } from "../store/types.js";
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, toVssError, VSS_PATH_PREFIX, VssError } from "./protocol.js";
import { VssService } from "./vss-service.js";

export interface VssTlsOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Client certificates signed by it are required (and reach `authenticate`, for `--auth mtls`). */
  readonly ca?: Buffer;
}

export interface VssServerOptions {
  /** `host:port`; port 0 picks a free one. */
  readonly listen: string;
  /** The tiered store (every call goes through an AuthorizedStore for the caller). */
  readonly store: KVStore;
  readonly limits: Limits;
  readonly logger: Logger;
  /** Who calls; open mode (one user, "default", holds every store id) when absent. */
  readonly authenticate?: Authenticate;
  /** Serve HTTPS instead of HTTP. */
  readonly tls?: VssTlsOptions;
  /** Largest request body, in bytes; by default the gRPC message limit of `limits`. */
  readonly maxBodyBytes?: number;
  /**
   * Other routes on the same listener (tierkv's own service over Connect and gRPC-Web): asked
   * first; calls `next` for paths it does not serve.
   */
  readonly otherRoutes?: (request: IncomingMessage, response: ServerResponse, next: () => void) => void;
}

export interface RunningVssServer {
  /** `host:port` actually bound. */
  readonly address: string;
  readonly port: number;
  /**
   * Stops accepting connections, lets requests in flight finish (up to `graceMs`, then closes
   * their connections) and resolves when the listener is down. Does not close the store.
   */
  close(graceMs?: number): Promise<void>;
}

interface Route {
  readonly name: string;
  readonly input: DescMessage;
  readonly output: DescMessage;
  readonly handle: (service: VssService, principal: Principal, request: unknown, options: CallOptions) => Promise<unknown>;
}

function route<I extends DescMessage, O extends DescMessage>(
  name: string,
  input: I,
  output: O,
  handle: (service: VssService, principal: Principal, request: MessageShape<I>, options: CallOptions) => Promise<MessageInitShape<O> | void>,
): Route {
  return { name, input, output, handle: handle as Route["handle"] };
}

const ROUTES: ReadonlyMap<string, Route> = new Map(
  [
    route("getObject", GetObjectRequestSchema, GetObjectResponseSchema, (s, p, r, o) => s.getObject(p, r, o)),
    route("putObjects", PutObjectRequestSchema, PutObjectResponseSchema, (s, p, r, o) => s.putObjects(p, r, o)),
    route("deleteObject", DeleteObjectRequestSchema, DeleteObjectResponseSchema, (s, p, r, o) => s.deleteObject(p, r, o)),
    route("listKeyVersions", ListKeyVersionsRequestSchema, ListKeyVersionsResponseSchema, (s, p, r, o) => s.listKeyVersions(p, r, o)),
  ].map((r) => [`${VSS_PATH_PREFIX}/${r.name}`, r]),
);

const OPEN: Authenticate = async () => OPEN_PRINCIPAL;

function hostOf(listen: string): string {
  const colon = listen.lastIndexOf(":");
  if (colon < 0) throw new Error(`--vss-listen "${listen}" must be host:port`);
  return listen.slice(0, colon);
}

function portOf(listen: string): number {
  const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--vss-listen "${listen}" has no valid port`);
  return port;
}

function pathOf(url: string | undefined): string {
  const end = url?.search(/[?#]/) ?? -1;
  return url === undefined ? "" : end < 0 ? url : url.slice(0, end);
}

function credentialsOf(request: IncomingMessage): Credentials {
  const authorization = request.headers.authorization;
  const socket = request.socket as Partial<TLSSocket>;
  const peerCertificate = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
  return { ...(authorization !== undefined && { authorization }), ...(peerCertificate !== undefined && { peerCertificate }) };
}

/** The request body, or a 413 once it exceeds `limit` bytes. */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new VssError("too-large", `the request body is ${declared} bytes; the limit is ${limit}`));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      if (size > limit) {
        request.off("data", onData);
        request.pause();
        reject(new VssError("too-large", `the request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    request.on("data", onData);
    request.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    request.once("error", reject);
    request.once("aborted", () => reject(new VssError("invalid-request", "the request was aborted")));
  });
}

export async function startVssServer(options: VssServerOptions): Promise<RunningVssServer> {
  const { logger } = options;
  const service = new VssService(options.store, options.limits);
  const authenticate = options.authenticate ?? OPEN;
  const maxBody = options.maxBodyBytes ?? messageLimitBytes(options.limits);

  const send = (response: ServerResponse, status: number, body: Uint8Array, extra: Record<string, string> = {}): void => {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    response.writeHead(status, {
      [PROTOCOL_VERSION_HEADER]: PROTOCOL_VERSION,
      "content-type": "application/octet-stream",
      "content-length": String(body.byteLength),
      ...extra,
    });
    response.end(body);
  };

  const fail = (request: IncomingMessage, response: ServerResponse, error: unknown, operation: string, bodyRead: boolean): void => {
    const failure = toVssError(error);
    if (failure.kind === "internal") logger.error({ err: failure.cause ?? failure, operation }, "VSS request failed");
    else logger.debug({ operation, status: failure.status, error: failure.message }, "VSS request refused");
    const body = toBinary(ErrorResponseSchema, create(ErrorResponseSchema, { errorCode: failure.code, message: failure.publicMessage }));
    const extra: Record<string, string> = failure.kind === "method" ? { allow: "POST" } : {};
    // An answer before the body was read ends the connection: the rest of the body is not read.
    if (!bodyRead && !request.complete) extra["connection"] = "close";
    send(response, failure.status, body, extra);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = pathOf(request.url);
    const target = ROUTES.get(path);
    let bodyRead = false;
    // Aborted when the caller goes away before its answer: waits for the store end early.
    const gone = new AbortController();
    response.once("close", () => {
      if (!response.writableFinished) gone.abort(new VssError("invalid-request", "the caller went away"));
    });
    try {
      if (target === undefined) throw new VssError("invalid-request", "Invalid request path.");
      if (request.method !== "POST") throw new VssError("method", `${target.name} takes POST, not ${request.method}`);
      const principal = await authenticate(credentialsOf(request));
      const body = await readBody(request, maxBody);
      bodyRead = true;
      let message: unknown;
      try {
        message = fromBinary(target.input, body);
      } catch {
        throw new VssError("invalid-request", "Error parsing request");
      }
      const answer = await target.handle(service, principal, message, { signal: gone.signal });
      send(response, 200, toBinary(target.output, create(target.output, (answer ?? {}) as MessageInitShape<DescMessage>)));
    } catch (error) {
      fail(request, response, error, target?.name ?? path, bodyRead);
    }
  };

  const answerVss = (request: IncomingMessage, response: ServerResponse): void => {
    handle(request, response).catch((error: unknown) => {
      logger.error({ err: error }, "VSS request failed while answering");
      response.destroy();
    });
  };
  const { otherRoutes } = options;
  const listener = otherRoutes
    ? (request: IncomingMessage, response: ServerResponse): void => otherRoutes(request, response, () => answerVss(request, response))
    : answerVss;

  const tls = options.tls;
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.ca !== undefined && { ca: tls.ca, requestCert: true, rejectUnauthorized: true }) }, listener)
    : createHttpServer(listener);
  const host = hostOf(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(portOf(options.listen), host.replace(/^\[(.*)\]$/, "$1"), () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => logger.error({ err: error }, "VSS listener error"));
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  const close = (graceMs = 30_000): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        logger.warn({ graceMs }, "VSS requests did not finish in time; closing their connections");
        server.closeAllConnections();
      }, graceMs);
      force.unref();
      server.close(() => {
        clearTimeout(force);
        resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };
  return { address: `${host}:${port}`, port, close };
}
