//! A follower's face to its callers: the tiered store for reading, every mutation refused with
//! FAILED_PRECONDITION naming the leader to write to. Every surface (gRPC, Connect, VSS) is given
//! this store, so none can write; only the follower itself applies changes, to the primary.

import { StoreError } from "../store/errors.js";
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

export class ReadOnlyStore implements KVStore {
  /** `leader` as callers may see it: scheme, host and port, never its parameters (token file, keys). */
  constructor(
    private readonly inner: KVStore,
    private readonly leader: string,
  ) {}

  private refusal(): StoreError {
    return new StoreError("failed-precondition", `this instance follows ${this.leader} (read-only); write to the leader`, { reason: "read-only" });
  }

  read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array> {
    return this.inner.read(ref, options);
  }

  readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue> {
    return this.inner.readVersioned(ref, options);
  }

  async write(_ref: KeyRef, _value: Uint8Array, _options?: MutationOptions): Promise<MutationOutcome> {
    throw this.refusal();
  }

  async remove(_ref: KeyRef, _options?: RemoveOptions): Promise<MutationOutcome> {
    throw this.refusal();
  }

  /** A Txn of checks alone changes nothing: it is answered, as a read would be. */
  async txn(request: TxnRequest): Promise<TxnResult> {
    if (request.operations.length > 0) throw this.refusal();
    return this.inner.txn(request);
  }

  list(ns: NamespaceRef, options?: ListOptions): Promise<string[]> {
    return this.inner.list(ns, options);
  }

  listPage(ns: NamespaceRef, page?: PageRequest): Promise<Page> {
    return this.inner.listPage(ns, page);
  }

  listAllKeys(request?: AllKeysRequest): Promise<AllKeysPage> {
    return this.inner.listAllKeys(request);
  }

  highestVersion(): Promise<bigint> {
    return this.inner.highestVersion();
  }

  /** The tiered store is closed by its owner. */
  async close(): Promise<void> {}
}
