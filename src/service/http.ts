//! What an HTTP surface (Connect, gRPC-Web, VSS) hands the call pipeline before reading a body:
//! the credentials (the `authorization` header and, over HTTPS, the client certificate) and a
//! header reader for trace context.

import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Credentials } from "../auth/authenticator.js";
import type { HeaderGetter } from "./span.js";

/** The credentials of an HTTP request: its authorization header and its TLS client certificate. */
export function httpCredentials(request: IncomingMessage): Credentials {
  const authorization = request.headers.authorization;
  const socket = request.socket as Partial<TLSSocket>;
  const peerCertificate = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
  return { ...(authorization !== undefined && { authorization }), ...(peerCertificate !== undefined && { peerCertificate }) };
}

/** Reads one header of `request` (the first value of a repeated one). */
export function httpHeader(request: IncomingMessage): HeaderGetter {
  return (name) => {
    const value = request.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
}
