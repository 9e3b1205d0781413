//! Validation of names and versions (contract §1), shared by the server, the client and every backend.

import { invalidArgument } from "./errors.js";
import { storeIdOf, type KeyRef, type NamespaceRef, type TxnRequest } from "./types.js";

import { MAX_NAME_LENGTH, MAX_STORE_ID_LENGTH, MAX_VERSION, MAX_VSS_KEY_LENGTH } from "../limits.js";

export { MAX_NAME_LENGTH, MAX_STORE_ID_LENGTH, MAX_VERSION, MAX_VSS_KEY_LENGTH };

const ALLOWED = /^[A-Za-z0-9_-]*$/;

/**
 * A key's or namespace's address as the CLI writes it: `primary/secondary/key`, with empty
 * namespaces left out (`key`, `primary/key`). One-to-one for valid names, since `/` never
 * appears in one; used as the identity of a key in maps.
 */
export function formatPath(ref: NamespaceRef & { key?: string }): string {
  return [ref.primaryNamespace, ref.secondaryNamespace, ref.key ?? ""].filter((part) => part !== "").join("/");
}

/** `formatPath` fit for one line of an error message: control characters escaped, length capped. */
function displayPath(ref: NamespaceRef & { key?: string }): string {
  const path = [ref.primaryNamespace, ref.secondaryNamespace, ref.key]
    .filter((part) => typeof part === "string" && part !== "")
    .join("/")
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

function checkName(what: string, name: string): string | undefined {
  if (typeof name !== "string") return `${what} must be a string`;
  if (name.length > MAX_NAME_LENGTH) {
    return `${what} is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH}`;
  }
  if (!ALLOWED.test(name)) {
    const bad = [...name].find((c) => !/[A-Za-z0-9_-]/.test(c)) ?? "";
    return `${what} contains ${JSON.stringify(bad)}; only A-Z a-z 0-9 _ - are allowed`;
  }
  return undefined;
}

function namespaceProblem(ns: NamespaceRef): string | undefined {
  return (
    checkName("primary_namespace", ns.primaryNamespace) ??
    checkName("secondary_namespace", ns.secondaryNamespace) ??
    (ns.primaryNamespace === "" && ns.secondaryNamespace !== ""
      ? "secondary_namespace must be empty when primary_namespace is empty"
      : undefined)
  );
}


function storeIdProblem(ns: NamespaceRef): string | undefined {
  const id = storeIdOf(ns);
  if (typeof id !== "string" || id === "") return "store_id must be a non-empty string";
  if (id.length > MAX_STORE_ID_LENGTH) return `store_id is ${id.length} characters long; the limit is ${MAX_STORE_ID_LENGTH}`;
  if (/[\u0000-\u001f\u007f]/.test(id)) return "store_id contains a control character";
  return undefined;
}

/** Throws `invalid-argument` unless the namespace pair is valid; `operation` names the call. */
export function validateNamespace(ns: NamespaceRef, operation: string): void {
  const problem = storeIdProblem(ns) ?? namespaceProblem(ns);
  if (problem !== undefined) {
    throw invalidArgument(`Failed to ${operation} ${displayPath(ns)}: ${problem}`);
  }
}

/**
 * Store ids with this prefix hold VSS stores (src/vss/, contract "VSS"): their keys follow VSS's
 * rules instead of LDK's, so they never share a store with LDK-named keys.
 */
export const VSS_STORE_PREFIX = "vss:";


/**
 * Store ids with this prefix hold the server's own records (a follower's applied positions, in
 * its primary beside the data): no request may name one, no identity may own one, and listings
 * and watches of every store leave them out.
 */
export const INTERNAL_STORE_PREFIX = "_tierkv:";

export function isInternalStore(storeId: string): boolean {
  return storeId.startsWith(INTERNAL_STORE_PREFIX);
}

/** VSS's key rules: 1 to 600 characters of any text without control characters. */
function vssKeyProblem(key: string): string | undefined {
  if (typeof key !== "string") return "key must be a string";
  if (key === "") return "key may not be empty";
  const length = key.length > MAX_VSS_KEY_LENGTH ? [...key].length : key.length;
  if (length > MAX_VSS_KEY_LENGTH) return `key is ${length} characters long; the limit is ${MAX_VSS_KEY_LENGTH}`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(key)) return "key contains a control character";
  return undefined;
}

function keyProblem(ref: KeyRef): string | undefined {
  if (storeIdOf(ref).startsWith(VSS_STORE_PREFIX)) return vssKeyProblem(ref.key);
  return checkName("key", ref.key) ?? (ref.key === "" ? "key may not be empty" : undefined);
}

/** Throws `invalid-argument` unless the namespace pair and key are valid. */
export function validateKey(ref: KeyRef, operation: string): void {
  const problem = storeIdProblem(ref) ?? namespaceProblem(ref) ?? keyProblem(ref);
  if (problem !== undefined) {
    throw invalidArgument(`Failed to ${operation} ${displayPath(ref)}: ${problem}`);
  }
}

/** Throws `invalid-argument` unless `version` is undefined or in 1..MAX_VERSION. */
export function validateVersion(version: bigint | undefined, ref: KeyRef, operation: string): void {
  if (version === undefined) return;
  if (version <= 0n || version > MAX_VERSION) {
    throw invalidArgument(
      `Failed to ${operation} ${formatPath(ref)}: version ${version} is outside 1..${MAX_VERSION}`,
    );
  }
}

/** Throws `invalid-argument` unless every key of the batch is valid and the batch is not empty. */
export function validateTxn(request: TxnRequest): void {
  if (request.operations.length === 0 && request.checks.length === 0) {
    throw invalidArgument("Failed to apply a transaction: it has no checks and no operations");
  }
  for (const check of request.checks) {
    validateKey(check, "check");
    if (typeof check.expect === "bigint" && (check.expect <= 0n || check.expect > MAX_VERSION)) {
      throw invalidArgument(`Failed to check ${displayPath(check)}: revision ${check.expect} is outside 1..${MAX_VERSION}`);
    }
  }
  const seen = new Set<string>();
  for (const operation of request.operations) {
    validateKey(operation, operation.kind);
    const id = `${storeIdOf(operation)}\0${formatPath(operation)}`;
    if (seen.has(id)) throw invalidArgument(`Failed to apply a transaction: ${displayPath(operation)} appears in two operations`);
    seen.add(id);
  }
  validateVersion(request.version, request.operations[0] ?? request.checks[0]!, "apply a transaction to");
}

/**
 * Parses `key`, `primary/key` or `primary/secondary/key` (the CLI's and config's notation).
 * Throws `invalid-argument` for more than three parts or invalid names.
 */
export function parseKeyPath(path: string): KeyRef {
  const parts = path.split("/");
  let ref: KeyRef;
  if (parts.length === 1) ref = { primaryNamespace: "", secondaryNamespace: "", key: parts[0]! };
  else if (parts.length === 2) ref = { primaryNamespace: parts[0]!, secondaryNamespace: "", key: parts[1]! };
  else if (parts.length === 3) ref = { primaryNamespace: parts[0]!, secondaryNamespace: parts[1]!, key: parts[2]! };
  else throw invalidArgument(`"${path}" has ${parts.length} parts; expected key, ns/key or ns/sub/key`);
  validateKey(ref, "parse");
  return ref;
}

/** Parses ``, `primary` or `primary/secondary` into a namespace pair. */
export function parseNamespacePath(path: string): NamespaceRef {
  const parts = path === "" ? [] : path.split("/");
  if (parts.length > 2) {
    throw invalidArgument(`"${path}" has ${parts.length} parts; expected "", ns or ns/sub`);
  }
  const ns = { primaryNamespace: parts[0] ?? "", secondaryNamespace: parts[1] ?? "" };
  validateNamespace(ns, "parse");
  return ns;
}
