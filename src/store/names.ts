//! The rules of names (contract §1): what makes a store id, a namespace pair or a key valid, each
//! rule answering with the problem it finds or undefined. `validate.ts` applies them to requests.

import { storeIdOf, type KeyRef, type NamespaceRef } from "./types.js";

import { MAX_NAME_LENGTH, MAX_STORE_ID_LENGTH, MAX_VSS_KEY_LENGTH } from "../limits.js";

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

const ALLOWED = /^[A-Za-z0-9_-]*$/;

function nameProblem(what: string, name: string): string | undefined {
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

export function storeIdProblem(ns: NamespaceRef): string | undefined {
  const id = storeIdOf(ns);
  if (typeof id !== "string" || id === "") return "store_id must be a non-empty string";
  if (id.length > MAX_STORE_ID_LENGTH) return `store_id is ${id.length} characters long; the limit is ${MAX_STORE_ID_LENGTH}`;
  if (/[\u0000-\u001f\u007f]/.test(id)) return "store_id contains a control character";
  return undefined;
}

export function namespaceProblem(ns: NamespaceRef): string | undefined {
  return (
    nameProblem("primary_namespace", ns.primaryNamespace) ??
    nameProblem("secondary_namespace", ns.secondaryNamespace) ??
    (ns.primaryNamespace === "" && ns.secondaryNamespace !== ""
      ? "secondary_namespace must be empty when primary_namespace is empty"
      : undefined)
  );
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

/** The key alone, by the rules of its store: LDK's, or VSS's in a `vss:` store. */
export function keyProblem(ref: KeyRef): string | undefined {
  if (storeIdOf(ref).startsWith(VSS_STORE_PREFIX)) return vssKeyProblem(ref.key);
  return nameProblem("key", ref.key) ?? (ref.key === "" ? "key may not be empty" : undefined);
}
