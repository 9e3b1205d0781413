//! Opaque page tokens: a position inside one namespace pair, bound to that pair.

import { createHash } from "node:crypto";
import { invalidArgument } from "./errors.js";
import { formatPath } from "./validate.js";
import { storeIdOf, type AllKeysPage, type AllKeysRequest, type KeyRef, type KeyVersion, type NamespaceRef, type Page } from "./types.js";

const TOKEN_FORMAT = 1;

interface TokenBody {
  /** Format version, so a later format can still read (or clearly reject) this one. */
  f: number;
  /** Fingerprint of the store and namespace pair: a token is rejected in any other. */
  n: string;
  /** The backend's position: the last key returned (creation sequence or key, as a string). */
  p: string;
}

function fingerprint(ns: NamespaceRef): string {
  return createHash("sha256")
    .update(`${storeIdOf(ns)}\0${ns.primaryNamespace}\0${ns.secondaryNamespace}`)
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

/** Format of `ListAllKeys` tokens (2: the store id joined the cursor). */
const CURSOR_FORMAT = 2;

/** The token of a `ListAllKeys` page: the last key returned, across all namespaces (and stores). */
export function encodeKeyCursor(after: KeyRef): string {
  const parts = [CURSOR_FORMAT, storeIdOf(after), after.primaryNamespace, after.secondaryNamespace, after.key];
  return Buffer.from(JSON.stringify(parts)).toString("base64url");
}

/** The key a `ListAllKeys` token points after; throws `invalid-argument` when malformed. */
export function decodeKeyCursor(token: string): KeyRef & { storeId: string } {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    parts = undefined;
  }
  if (
    !Array.isArray(parts) ||
    parts.length !== 5 ||
    parts[0] !== CURSOR_FORMAT ||
    !parts.slice(1).every((part) => typeof part === "string")
  ) {
    throw invalidArgument("Failed to list all keys: malformed page_token");
  }
  const [, storeId, primaryNamespace, secondaryNamespace, key] = parts as [number, string, string, string, string];
  return { storeId, primaryNamespace, secondaryNamespace, key };
}

/**
 * Where a `listAllKeys` page starts: after the token's key, or at the first key (of the request's
 * store, or of all stores). Throws `invalid-argument` for a token of another store.
 */
export function allKeysStart(request: AllKeysRequest): KeyRef & { storeId: string } {
  const storeId = storeIdOf(request);
  if (!request.pageToken) {
    return { storeId: request.allStores ? "" : storeId, primaryNamespace: "", secondaryNamespace: "", key: "" };
  }
  const after = decodeKeyCursor(request.pageToken);
  if (!request.allStores && after.storeId !== storeId) {
    throw invalidArgument("Failed to list all keys: page_token belongs to another store");
  }
  return after;
}

/** A `listAllKeys` page from up to `limit + 1` rows: the extra row only says that more follow. */
export function allKeysPage(rows: KeyVersion[], limit: number): AllKeysPage {
  if (rows.length <= limit) return { keys: rows, nextPageToken: "" };
  const keys = rows.slice(0, limit);
  return { keys, nextPageToken: encodeKeyCursor(keys.at(-1)!) };
}

/**
 * A newest-first `listPage` page from up to `size + 1` rows ordered by creation sequence, newest
 * first: the extra row only says that another page follows, so the last page has an empty token.
 */
export function sequencePage(ns: NamespaceRef, rows: ReadonlyArray<{ key: string; seq: number | bigint }>, size: number): Page {
  const more = rows.length > size;
  const kept = more ? rows.slice(0, size) : rows;
  const last = kept.at(-1);
  return { keys: kept.map((row) => row.key), nextPageToken: more && last ? encodePageToken(ns, String(last.seq)) : "" };
}
