//! Opaque page tokens: a position inside one namespace pair, bound to that pair.

import { createHash } from "node:crypto";
import { invalidArgument } from "./errors.js";
import { formatPath } from "./validate.js";
import type { KeyRef, NamespaceRef } from "./types.js";

const TOKEN_FORMAT = 1;

interface TokenBody {
  /** Format version, so a later format can still read (or clearly reject) this one. */
  f: number;
  /** Fingerprint of the namespace pair: a token is rejected in any other pair. */
  n: string;
  /** The backend's position: the last key returned (creation sequence or key, as a string). */
  p: string;
}

function fingerprint(ns: NamespaceRef): string {
  return createHash("sha256")
    .update(`${ns.primaryNamespace}\0${ns.secondaryNamespace}`)
    .digest("base64url")
    .slice(0, 11);
}

export function encodePageToken(ns: NamespaceRef, position: string): string {
  const body: TokenBody = { f: TOKEN_FORMAT, n: fingerprint(ns), p: position };
  return Buffer.from(JSON.stringify(body)).toString("base64url");
}

/** The position inside `ns`; throws `invalid-argument` for a malformed or foreign token. */
export function decodePageToken(ns: NamespaceRef, token: string): string {
  let body: Partial<TokenBody> | undefined;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<TokenBody>;
  } catch {
    body = undefined;
  }
  if (body?.f !== TOKEN_FORMAT || typeof body.n !== "string" || typeof body.p !== "string") {
    throw invalidArgument(`Failed to list ${formatPath(ns)}: malformed page_token`);
  }
  if (body.n !== fingerprint(ns)) {
    throw invalidArgument(
      `Failed to list ${formatPath(ns)}: page_token belongs to another namespace pair`,
    );
  }
  return body.p;
}

/** For backends that page by creation sequence (newest first): the sequence number in the token. */
export function decodeSequenceToken(ns: NamespaceRef, token: string): number {
  const position = decodePageToken(ns, token);
  if (!/^[0-9]{1,15}$/.test(position)) {
    throw invalidArgument(`Failed to list ${formatPath(ns)}: malformed page_token`);
  }
  return Number(position);
}

/** The token of a `ListAllKeys` page: the last key returned, across all namespaces. */
export function encodeKeyCursor(after: KeyRef): string {
  return Buffer.from(JSON.stringify([TOKEN_FORMAT, after.primaryNamespace, after.secondaryNamespace, after.key])).toString(
    "base64url",
  );
}

/** The key a `ListAllKeys` token points after; throws `invalid-argument` when malformed. */
export function decodeKeyCursor(token: string): KeyRef {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    parts = undefined;
  }
  if (
    !Array.isArray(parts) ||
    parts.length !== 4 ||
    parts[0] !== TOKEN_FORMAT ||
    !parts.slice(1).every((part) => typeof part === "string")
  ) {
    throw invalidArgument("Failed to list all keys: malformed page_token");
  }
  return { primaryNamespace: parts[1] as string, secondaryNamespace: parts[2] as string, key: parts[3] as string };
}
