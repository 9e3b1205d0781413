//! Validation of requests (contract §1), shared by the server, the client and every backend: the
//! rules of names (`names.ts`) and versions applied with one message shape, once per request on
//! the server — the first layer's proof travels with what it hands down.

import { invalidArgument } from "./errors.js";
import { keyProblem, namespaceProblem, storeIdProblem } from "./names.js";
import { storeIdOf, type KeyRef, type NamespaceRef, type TxnCheck, type TxnOperation, type TxnRequest } from "./types.js";

import { MAX_NAME_LENGTH, MAX_STORE_ID_LENGTH, MAX_VERSION, MAX_VSS_KEY_LENGTH } from "../limits.js";

export { MAX_NAME_LENGTH, MAX_STORE_ID_LENGTH, MAX_VERSION, MAX_VSS_KEY_LENGTH };

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

/**
 * A reference whose names `validKey` proved valid: a frozen copy, so no name can change after the
 * proof. The first layer that validates a request on the server (the tiered store) hands these to
 * the layers below it (each tier's backend, a remote tier's client), which skip them: a request's
 * names are checked once. A plain reference is checked wherever it arrives, so a backend used on
 * its own still refuses bad names. (A class, not a WeakSet: `instanceof` costs nanoseconds.)
 */
class ValidKeyRef implements KeyRef {
  constructor(
    readonly storeId: string | undefined,
    readonly primaryNamespace: string,
    readonly secondaryNamespace: string,
    readonly key: string,
  ) {
    Object.freeze(this);
  }
}

/** A namespace pair `validNamespace` proved valid (see ValidKeyRef). */
class ValidNamespaceRef implements NamespaceRef {
  constructor(
    readonly storeId: string | undefined,
    readonly primaryNamespace: string,
    readonly secondaryNamespace: string,
  ) {
    Object.freeze(this);
  }
}

/**
 * Batches `validTxn` proved valid: each frozen operations array with its frozen checks array.
 * Keyed by the arrays because every layer copies the request itself to set its own options.
 */
const validBatches = new WeakMap<readonly TxnOperation[], readonly TxnCheck[]>();
const NO_CHECKS: readonly TxnCheck[] = Object.freeze([]);

/** Throws `invalid-argument` unless the namespace pair is valid; `operation` names the call. */
export function validateNamespace(ns: NamespaceRef, operation: string): void {
  if (ns instanceof ValidNamespaceRef || ns instanceof ValidKeyRef) return;
  const problem = storeIdProblem(ns) ?? namespaceProblem(ns);
  if (problem !== undefined) {
    throw invalidArgument(`Failed to ${operation} ${displayPath(ns)}: ${problem}`);
  }
}

/** `ns`, validated once: a copy the layers below do not check again (see ValidKeyRef). */
export function validNamespace(ns: NamespaceRef, operation: string): NamespaceRef {
  if (ns instanceof ValidNamespaceRef) return ns;
  validateNamespace(ns, operation);
  return new ValidNamespaceRef(ns.storeId, ns.primaryNamespace, ns.secondaryNamespace);
}

/** Throws `invalid-argument` unless the namespace pair and key are valid. */
export function validateKey(ref: KeyRef, operation: string): void {
  if (ref instanceof ValidKeyRef) return;
  const problem = storeIdProblem(ref) ?? namespaceProblem(ref) ?? keyProblem(ref);
  if (problem !== undefined) {
    throw invalidArgument(`Failed to ${operation} ${displayPath(ref)}: ${problem}`);
  }
}

/** `ref`, validated once: a copy of its names the layers below do not check again (see ValidKeyRef). */
export function validKey(ref: KeyRef, operation: string): KeyRef {
  if (ref instanceof ValidKeyRef) return ref;
  validateKey(ref, operation);
  return new ValidKeyRef(ref.storeId, ref.primaryNamespace, ref.secondaryNamespace, ref.key);
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

/**
 * Throws `invalid-argument` unless every key of the batch is valid and the batch is not empty. A
 * batch `validTxn` proved is not checked again, its version included: a layer that replaces the
 * version checks its own (the tiered store's clock, or the caller's through `versionFor`).
 */
export function validateTxn(request: TxnRequest): void {
  if (validBatches.get(request.operations) === request.checks) return;
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

/** `request`, validated once: its checks and operations as frozen copies the layers below do not check again. */
export function validTxn(request: TxnRequest): TxnRequest {
  if (validBatches.get(request.operations) === request.checks) return request;
  validateTxn(request);
  const checks = Object.freeze(request.checks.map((check) => Object.freeze({ ...check })));
  const operations = Object.freeze(request.operations.map((operation) => Object.freeze({ ...operation })));
  validBatches.set(operations, checks);
  return { ...request, checks, operations };
}

/**
 * The operations of a batch, each with the version (and a write with the revision) another tier
 * is to store, as a batch without checks: the tiered store mirrors a Txn to its backup with the
 * primary's. No name changes, so a batch `validTxn` proved stays proven.
 */
export function reorderedBatch(
  operations: readonly TxnOperation[],
  orderingOf: (index: number) => { readonly version: bigint; readonly revision: bigint },
): Pick<TxnRequest, "checks" | "operations"> {
  const reordered = Object.freeze(
    operations.map((operation, i): TxnOperation => {
      const { version, revision } = orderingOf(i);
      return Object.freeze(operation.kind === "write" ? { ...operation, version, revision } : { ...operation, version });
    }),
  );
  if (validBatches.has(operations)) validBatches.set(reordered, NO_CHECKS);
  return { checks: NO_CHECKS, operations: reordered };
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
