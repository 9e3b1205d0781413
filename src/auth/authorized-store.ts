//! The one wrapper that enforces access (etcd's authApplier idea): a `KVStore` view of the tiered
//! store for one principal. Every reference gets the caller's store unless the caller may name
//! another; every call needs its role. Handlers of every surface call the store through it.

import { StoreError } from "../store/errors.js";
import { INTERNAL_STORE_PREFIX, isInternalStore } from "../store/names.js";
import type {
  AllKeysPage,
  AllKeysRequest,
  CallOptions,
  KVStore,
  KeyRef,
  ListOptions,
  MutationOptions,
  MutationOutcome,
  NamespaceRef,
  Page,
  PageRequest,
  RemoveOptions,
  TxnRequest,
  TxnResult,
  VersionedValue,
} from "../store/types.js";
import { allows, type Principal, type Role } from "./principal.js";

function denied(principal: Principal, what: string): StoreError {
  return new StoreError("permission-denied", `${principal.name} may not ${what}`);
}

/** The server's own records (a follower's positions) are no caller's, whatever its roles. */
function refuseInternal(storeId: string | undefined): void {
  if (storeId !== undefined && isInternalStore(storeId)) {
    throw new StoreError("permission-denied", `store ids starting with "${INTERNAL_STORE_PREFIX}" are reserved for the server's own records`);
  }
}

/**
 * Every method is async, so a refusal is a rejected promise like any store failure, never a
 * synchronous throw (callers such as `Promise.allSettled(refs.map(...))` rely on that).
 */
export class AuthorizedStore implements KVStore {
  constructor(
    private readonly inner: KVStore,
    private readonly principal: Principal,
  ) {}

  private require(role: Role, what: string): void {
    if (!allows(this.principal, role)) throw denied(this.principal, what);
  }

  /**
   * `ref` in the store it may address: the caller's own when it names none. Naming another store
   * takes `replicate` (a chained instance forwarding its tenants), or `admin` for reading.
   */
  private scope<T extends { readonly storeId?: string }>(ref: T, access: "read" | "write"): T & { storeId: string } {
    const own = this.principal.storeId;
    refuseInternal(ref.storeId);
    if (ref.storeId === undefined || ref.storeId === own) return { ...ref, storeId: own };
    if (!(allows(this.principal, "replicate") || (access === "read" && allows(this.principal, "admin")))) {
      throw denied(this.principal, `${access} another store`);
    }
    return { ...ref, storeId: ref.storeId };
  }

  /** Mirroring fields (exact copies, given revisions, ledger records) belong to replication. */
  private checkMirroring(options: MutationOptions): void {
    if (options.exact || options.revision !== undefined || options.owedToBackup) this.require("replicate", "mirror revisions or repair keys");
  }

  /** The caller's quota travels with its mutations (the primary decides it in the mutation's transaction). */
  private withQuota<T extends { quota?: MutationOptions["quota"] }>(options: T): T {
    return this.principal.quota === undefined ? options : { ...options, quota: this.principal.quota };
  }

  async read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array> {
    this.require("read", "read");
    return this.inner.read(this.scope(ref, "read"), options);
  }

  async readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue> {
    this.require("read", "read");
    return this.inner.readVersioned(this.scope(ref, "read"), options);
  }

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    this.require("write", "write");
    this.checkMirroring(options);
    return this.inner.write(this.scope(ref, "write"), value, this.withQuota(options));
  }

  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    this.require("write", "remove");
    this.checkMirroring(options);
    return this.inner.remove(this.scope(ref, "write"), this.withQuota(options));
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.require("write", "apply transactions");
    if (request.owedToBackup || request.operations.some((op) => op.version !== undefined || (op.kind === "write" && op.revision !== undefined))) {
      this.require("replicate", "mirror versions and revisions");
    }
    return this.inner.txn({
      ...this.withQuota(request),
      checks: request.checks.map((check) => this.scope(check, "write")),
      operations: request.operations.map((op) => this.scope(op, "write")),
    });
  }

  async list(ns: NamespaceRef, options?: ListOptions): Promise<string[]> {
    this.require("read", "list");
    return this.inner.list(this.scope(ns, "read"), options);
  }

  async listPage(ns: NamespaceRef, page?: PageRequest): Promise<Page> {
    this.require("read", "list");
    return this.inner.listPage(this.scope(ns, "read"), page);
  }

  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    this.require("read", "list");
    if (request.allStores && !(allows(this.principal, "replicate") || allows(this.principal, "admin"))) {
      throw denied(this.principal, "list every store");
    }
    if (!request.allStores) return this.inner.listAllKeys(this.scope(request, "read"));
    // Pages keep their tokens: a page of the server's own records alone comes back empty.
    const page = await this.inner.listAllKeys(request);
    return { ...page, keys: page.keys.filter((key) => !isInternalStore(key.storeId)) };
  }

  async highestVersion(): Promise<bigint> {
    return this.inner.highestVersion();
  }

  /** The view owns nothing: the tiered store is closed by its owner. */
  async close(): Promise<void> {}
}

/**
 * AdminService's operations (resync, backup status, store usage, snapshots) for `principal`: the
 * same one place of enforcement as the store's, for the one role they all need.
 */
export function authorizedAdmin<T>(operations: T, principal: Principal): T {
  if (!allows(principal, "admin")) throw denied(principal, "use AdminService (needs the admin role)");
  return operations;
}

/**
 * What a Watch may follow for `principal`, by the rules of `AuthorizedStore`: its own store with
 * the read role; another store with `replicate`, or `admin` (reading); every store likewise.
 */
export function authorizeWatch(principal: Principal, target: { readonly storeId?: string; readonly allStores: boolean }): { storeId?: string; allStores: boolean } {
  if (!allows(principal, "read")) throw denied(principal, "watch");
  const mayNameOthers = allows(principal, "replicate") || allows(principal, "admin");
  if (target.allStores) {
    if (!mayNameOthers) throw denied(principal, "watch every store");
    return { allStores: true };
  }
  refuseInternal(target.storeId);
  const storeId = target.storeId ?? principal.storeId;
  if (storeId !== principal.storeId && !mayNameOthers) throw denied(principal, "watch another store");
  return { storeId, allStores: false };
}
