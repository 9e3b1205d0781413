//! The VSS operations on the tiered store (docs/contract.md, "VSS").
//!
//! Key space: the client's (user, store_id) is the internal store `vss:<user>:<store_id>` (user:
//! the caller's store id, URI-encoded so `:` cannot shift the boundary; a signing key's hex under
//! `--auth sigs`), and each VSS key is that store's key in the root namespace. Central validation
//! holds `vss:` stores to VSS's key rules, so gRPC keys and VSS keys never share a store.
//!
//! Versions: a key's VSS version is its revision (1 on creation, +1 per write), so VSS's
//! conditions are Txn checks: version 0 = absent, N = revision N; -1 writes with an explicit
//! revision 1, as vss-server resets it. The global version is the revision of the key
//! `global_version` (see protocol.ts), checked and written in the same Txn as the items.
//!
//! Every call reaches the store through an `AuthorizedStore` scoped to the VSS store alone, and
//! every mutation is one Txn of the tiered store, so backups and chains receive it atomically.

import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  DeleteObjectRequest,
  GetObjectRequest,
  GetObjectResponseSchema,
  KeyValueSchema,
  ListKeyVersionsRequest,
  ListKeyVersionsResponseSchema,
  PutObjectRequest,
} from "../../gen/vss/v1/vss_pb.js";
import { createHash } from "node:crypto";
import { AuthorizedStore } from "../auth/authorized-store.js";
import { allows, type Principal, type Role } from "../auth/principal.js";
import type { Limits } from "../limits.js";
import { StoreError } from "../store/errors.js";
import type { CallOptions, KVStore, KeyRef, MutationOutcome, NamespaceRef, TxnCheck, TxnOperation } from "../store/types.js";
import { VSS_STORE_PREFIX } from "../store/names.js";
import { vssUserPrefix } from "../store/usage-group.js";
import { MAX_STORE_ID_LENGTH, validateKey, validateTxn } from "../store/validate.js";
import {
  DEFAULT_LIST_PAGE_SIZE,
  GLOBAL_VERSION_KEY,
  invalidRequest,
  MAX_LIST_PAGE_SIZE,
  MAX_VSS_STORE_ID_LENGTH,
  showKey,
  VssError,
} from "./protocol.js";

/** A listing reads at most this many keys of the store per request, then returns a token. */
export const LIST_MAX_SCANNED_KEYS = 1000;
/** …and makes at most this many store calls. */
export const LIST_MAX_STORE_CALLS = 32;

const ROOT: NamespaceRef = { primaryNamespace: "", secondaryNamespace: "" };
const EMPTY = new Uint8Array(0);

/** The internal store id of a user's VSS store: the user's prefix, which also names its usage group (quotas). */
export function vssStoreId(user: string, storeId: string): string {
  return `${vssUserPrefix(user)}${storeId}`;
}

function checkStoreId(storeId: string): void {
  const length = [...storeId].length;
  if (length > MAX_VSS_STORE_ID_LENGTH) throw invalidRequest(`store_id is ${length} characters long; the limit is ${MAX_VSS_STORE_ID_LENGTH}`);
  if (/[\u0000-\u001f\u007f-\u009f]/.test(storeId)) throw invalidRequest("store_id contains a control character");
}

/**
 * The caller as the owner of one VSS store: it may use that store only. Writers get `replicate`
 * as well, because AuthorizedStore reserves explicit revisions to it and VSS's unconditional put
 * resets the revision to 1; this view never names another store nor mirrors anything else.
 */
function ownerOf(principal: Principal, storeId: string): Principal {
  const internal = vssStoreId(principal.storeId, storeId);
  if (internal.length > MAX_STORE_ID_LENGTH) {
    throw invalidRequest(`store_id is too long for this user: the user and store id together exceed ${MAX_STORE_ID_LENGTH} characters`);
  }
  const roles: Role[] = allows(principal, "write") ? ["read", "write", "replicate"] : allows(principal, "read") ? ["read"] : [];
  return { name: principal.name, storeId: internal, roles: new Set(roles), ...(principal.quota !== undefined && { quota: principal.quota }) };
}

function refOf(key: string): KeyRef {
  return { ...ROOT, key };
}

/** The ListKeyVersions token: the store's own ListPage token, bound to the key prefix. */
interface ListToken {
  v: 1;
  /** The store's page token (never empty: a listing that ended returns ""). */
  t: string;
  /** Fingerprint of the key prefix. */
  p: string;
}

function prefixFingerprint(prefix: string): string {
  return createHash("sha256").update(prefix).digest("base64url").slice(0, 11);
}

function encodeListToken(storeToken: string, prefix: string): string {
  const token: ListToken = { v: 1, t: storeToken, p: prefixFingerprint(prefix) };
  return Buffer.from(JSON.stringify(token)).toString("base64url");
}

function decodeListToken(token: string, prefix: string): string {
  let body: Partial<ListToken> | undefined;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<ListToken>;
  } catch {
    body = undefined;
  }
  if (body?.v !== 1 || typeof body.t !== "string" || body.t === "" || typeof body.p !== "string") {
    throw invalidRequest("malformed page_token");
  }
  if (body.p !== prefixFingerprint(prefix)) throw invalidRequest("page_token belongs to a listing with another key_prefix");
  return body.t;
}

/** Whether a condition holds on a key's state after earlier items of the same request. */
function holdsAfter(expect: TxnCheck["expect"], revision: bigint | undefined): boolean {
  if (expect === "absent") return revision === undefined;
  if (expect === "present") return revision !== undefined;
  return revision === expect;
}

/**
 * A VSS mutation is acknowledged only when the store applied it. Mutations without a caller
 * version always apply (contract §3); a `stale` outcome would mean that rule broke, and answering
 * 200 would hide a lost write, so the caller gets a 500, which LDK Node retries.
 */
function notAppliedGuard(outcomes: readonly MutationOutcome[], operation: string): void {
  if (outcomes.some((outcome) => outcome !== "applied")) {
    throw new VssError("internal", `${operation}: the store acknowledged a mutation without applying it`);
  }
}

type GetObjectReply = MessageInitShape<typeof GetObjectResponseSchema>;
type ListReply = MessageInitShape<typeof ListKeyVersionsResponseSchema>;
type KeyVersionInit = MessageInitShape<typeof KeyValueSchema>;

export class VssService {
  constructor(
    private readonly tiers: KVStore,
    private readonly limits: Limits,
  ) {}

  /** The store as the caller's VSS store `storeId` sees it. */
  private storeFor(principal: Principal, storeId: string): KVStore {
    checkStoreId(storeId);
    return new AuthorizedStore(this.tiers, ownerOf(principal, storeId));
  }

  async getObject(principal: Principal, request: GetObjectRequest, options: CallOptions = {}): Promise<GetObjectReply> {
    const store = this.storeFor(principal, request.storeId);
    const { key } = request;
    try {
      const stored = await store.readVersioned(refOf(key), options);
      return { value: { key, version: stored.revision, value: stored.value } };
    } catch (error) {
      if (!(error instanceof StoreError && error.code === "not-found")) throw error;
      if (key === GLOBAL_VERSION_KEY) return { value: { key, version: 0n, value: EMPTY } };
      throw new VssError("no-such-key", `no such key: ${showKey(key)}`);
    }
  }

  /**
   * All transaction_items, the global version, then delete_items, applied in that order in one
   * Txn, as vss-server's `put` runs them (rust/impls/src/postgres_store.rs): all apply or none
   * (409). A key may appear more than once: its first item is checked against the stored state
   * (a Txn check), each later one against the state the earlier items leave (decided here, since
   * every item's outcome is known), and the Txn carries the key's final state as one operation.
   * Every put states its revision (the VSS version it leaves), so no tier counts on its own.
   */
  async putObjects(principal: Principal, request: PutObjectRequest, options: CallOptions = {}): Promise<void> {
    const store = this.storeFor(principal, request.storeId);
    const count = request.transactionItems.length + request.deleteItems.length;
    // --max-batch-items, as for Mutate and Txn (its default, 1,000, is vss-server's own limit).
    if (count > this.limits.maxBatchItems) {
      throw invalidRequest(`the request has ${count} items; the limit is ${this.limits.maxBatchItems} (--max-batch-items)`);
    }
    const checks: TxnCheck[] = [];
    /** Each key's state once the items so far apply: absent, or the revision it holds. */
    const after = new Map<string, { revision: bigint | undefined; operation: TxnOperation }>();
    let bytes = 0;
    /** Set by a condition that can never hold: the request conflicts. */
    let impossible: string | undefined;
    const apply = (key: string, expect: TxnCheck["expect"] | undefined, operation: TxnOperation, revision: bigint | undefined): void => {
      const earlier = after.get(key);
      if (earlier === undefined) {
        if (expect !== undefined) checks.push({ ...refOf(key), expect });
      } else if (expect !== undefined && !holdsAfter(expect, earlier.revision)) {
        impossible ??= key;
      }
      after.set(key, { revision, operation });
    };
    const put = (key: string, version: bigint, value: Uint8Array): void => {
      if (value.byteLength > this.limits.maxValueBytes) {
        throw invalidRequest(`the value of ${showKey(key)} is ${value.byteLength} bytes; the largest accepted is ${this.limits.maxValueBytes}`);
      }
      if (version < -1n) throw invalidRequest(`version ${version} of ${showKey(key)} is below -1`);
      bytes += value.byteLength;
      // -1 writes unconditionally and resets the version to 1, as vss-server does.
      const revision = version <= 0n ? 1n : version + 1n;
      const expect = version === -1n ? undefined : version === 0n ? "absent" : version;
      apply(key, expect, { ...refOf(key), kind: "write", value, revision }, revision);
    };
    for (const item of request.transactionItems) put(item.key, item.version, item.value);
    if (request.globalVersion !== undefined) put(GLOBAL_VERSION_KEY, request.globalVersion, EMPTY);
    for (const item of request.deleteItems) {
      if (item.version < -1n) throw invalidRequest(`version ${item.version} of ${showKey(item.key)} is below -1`);
      const remove: TxnOperation = { ...refOf(item.key), kind: "remove" };
      if (item.version === 0n) {
        // A stored key's version is at least 1: version 0 never matches.
        impossible ??= item.key;
        apply(item.key, undefined, remove, undefined);
      } else {
        apply(item.key, item.version === -1n ? "present" : item.version, remove, undefined);
      }
    }
    if (bytes > this.limits.maxBatchBytes) {
      throw invalidRequest(`the request carries ${bytes} bytes of values; the largest accepted is ${this.limits.maxBatchBytes}`);
    }
    const operations = [...after.values()].map((state) => state.operation);
    if (operations.length === 0) return;
    if (impossible !== undefined) {
      // Validated like any request first, so a bad key answers 400 rather than 409.
      validateTxn({ checks, operations: operations.map((op) => ({ ...op, storeId: VSS_STORE_PREFIX })) });
      throw new VssError("conflict", `the version given for ${showKey(impossible)} never matches the key's state`);
    }
    const result = await store.txn({ checks, operations, ...options });
    if (!result.succeeded) {
      const failed = checks[result.failedCheck]!;
      const what = failed.key === GLOBAL_VERSION_KEY && request.globalVersion !== undefined ? "global_version" : `the version of ${showKey(failed.key)}`;
      throw new VssError("conflict", `${what} does not match the stored one`);
    }
    notAppliedGuard(result.outcomes, "putObjects");
  }

  /** Idempotent: an absent key, or one whose version differs, answers success and is left alone. */
  async deleteObject(principal: Principal, request: DeleteObjectRequest, options: CallOptions = {}): Promise<void> {
    const store = this.storeFor(principal, request.storeId);
    const item = request.keyValue;
    if (item === undefined) throw invalidRequest("key_value is missing");
    const ref = refOf(item.key);
    if (item.version === -1n) {
      notAppliedGuard([await store.remove(ref, options)], "deleteObject");
    } else if (item.version > 0n) {
      const result = await store.txn({ checks: [{ ...ref, expect: item.version }], operations: [{ ...ref, kind: "remove" }], ...options });
      if (result.succeeded) notAppliedGuard(result.outcomes, "deleteObject");
    } else if (item.version === 0n) {
      validateKey({ ...ref, storeId: VSS_STORE_PREFIX }, "remove");
    } else {
      throw invalidRequest(`version ${item.version} of ${showKey(item.key)} is below -1`);
    }
  }

  /**
   * Newest-created first (the store's ListPage order), keys matching `key_prefix` literally, at
   * most `page_size` (≤ 100) of them. One request reads at most LIST_MAX_SCANNED_KEYS keys of the
   * store, so a rare prefix may give short or empty pages with a token; `next_page_token` is
   * always set, "" once the store has no more keys.
   */
  async listKeyVersions(principal: Principal, request: ListKeyVersionsRequest, options: CallOptions = {}): Promise<ListReply> {
    const store = this.storeFor(principal, request.storeId);
    const prefix = request.keyPrefix ?? "";
    const requested = request.pageSize ?? DEFAULT_LIST_PAGE_SIZE;
    if (requested < 0) throw invalidRequest(`page_size ${requested} is negative`);
    const pageSize = Math.min(requested, MAX_LIST_PAGE_SIZE);
    // Only an absent token is the first page, as in vss-server; LDK Node stops at "" and never sends it.
    if (request.pageToken === "") throw invalidRequest("page_token is empty; omit it to list from the first page");
    const first = request.pageToken === undefined;
    let storeToken = first ? undefined : decodeListToken(request.pageToken!, prefix);

    // Read before any key, as vss-server does.
    const globalVersion = first ? ((await this.revisionOf(store, GLOBAL_VERSION_KEY, options)) ?? 0n) : undefined;
    const reply = (keyVersions: KeyVersionInit[], nextPageToken: string): ListReply => ({
      keyVersions,
      nextPageToken,
      ...(globalVersion !== undefined && { globalVersion }),
    });
    if (pageSize === 0) return reply([], "");

    const matched: string[] = [];
    let scanned = 0;
    let calls = 0;
    let ended = false;
    while (matched.length < pageSize && scanned < LIST_MAX_SCANNED_KEYS && calls < LIST_MAX_STORE_CALLS) {
      // Never more keys than the page still needs: every key read is consumed, so the store's
      // token resumes exactly after the last one.
      const page = await store.listPage(ROOT, { ...options, pageSize: pageSize - matched.length, ...(storeToken !== undefined && { pageToken: storeToken }) });
      calls++;
      scanned += page.keys.length;
      for (const key of page.keys) if (key !== GLOBAL_VERSION_KEY && key.startsWith(prefix)) matched.push(key);
      if (page.nextPageToken === "") {
        ended = true;
        break;
      }
      storeToken = page.nextPageToken;
    }

    const keyVersions: KeyVersionInit[] = [];
    // One key at a time: each read brings its value, which is dropped at once.
    for (const key of matched) {
      const version = await this.revisionOf(store, key, options);
      if (version !== undefined) keyVersions.push({ key, version });
    }
    return reply(keyVersions, ended ? "" : encodeListToken(storeToken!, prefix));
  }

  /** The key's revision, or undefined when it is absent. */
  private async revisionOf(store: KVStore, key: string, options: CallOptions): Promise<bigint | undefined> {
    try {
      return (await store.readVersioned(refOf(key), options)).revision;
    } catch (error) {
      if (error instanceof StoreError && error.code === "not-found") return undefined;
      throw error;
    }
  }
}
