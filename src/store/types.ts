//! The KVStore contract (SPEC §1–§2): the one interface every backend, the tiered store and the
//! client implement.

/** A namespace pair. `("", "")` is the root namespace. Field names match the wire messages. */
export interface NamespaceRef {
  readonly primaryNamespace: string;
  readonly secondaryNamespace: string;
}

/** The address of one value. */
export interface KeyRef extends NamespaceRef {
  readonly key: string;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Absolute deadline in ms since the epoch; work (including retries) stops there. */
  readonly deadline?: number;
}

/** Options of a mutation (write or remove). */
export interface MutationOptions extends CallOptions {
  /**
   * The mutation's version (SPEC §3). A backend that stores versions applies the mutation only
   * when it is higher than the stored one; undefined means "apply unconditionally".
   */
  readonly version?: bigint;
}

export interface RemoveOptions extends MutationOptions {
  /** LDK's lazy remove: the store may defer the deletion (see SPEC §2). */
  readonly lazy?: boolean;
}

export interface PageRequest extends CallOptions {
  /** Largest number of keys to return; undefined or 0 means the store's default. */
  readonly pageSize?: number;
  /** The previous page's `nextPageToken`; undefined or "" for the first page. */
  readonly pageToken?: string;
}

export interface Page {
  readonly keys: string[];
  /** Empty when this was the last page. */
  readonly nextPageToken: string;
}

/** A value with the version of the mutation that wrote it (0n when the store does not know). */
export interface VersionedValue {
  readonly value: Uint8Array;
  readonly version: bigint;
}

/** A key's address with the version of the mutation that wrote its value. */
export interface KeyVersion extends KeyRef {
  readonly version: bigint;
}

export interface AllKeysRequest extends CallOptions {
  /** Start after this key (exclusive); from the first key when absent. */
  readonly after?: KeyRef;
  /** Largest number of keys to return; the store's default page size when absent. */
  readonly limit?: number;
}

/**
 * LDK's KVStore (plus PaginatedKVStore and MigratableKVStore) as an async interface.
 *
 * Errors are thrown as `StoreError`: `not-found` from `read`, `invalid-argument` for bad names or
 * page tokens, `unavailable` when a backing service cannot be reached.
 */
export interface KVStore {
  /** The current value; throws `not-found` when absent. */
  read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array>;
  /** The current value and its version; throws `not-found` when absent. */
  readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue>;
  /** Replaces the value atomically and durably (for durable backends) before resolving. */
  write(ref: KeyRef, value: Uint8Array, options?: MutationOptions): Promise<void>;
  /** Deletes the key; removing an absent key succeeds. */
  remove(ref: KeyRef, options?: RemoveOptions): Promise<void>;
  /** Every key of the namespace pair, without duplicates, in no particular order. */
  list(ns: NamespaceRef, options?: CallOptions): Promise<string[]>;
  /** One page of keys, newest-created first where the backend can (documented per backend). */
  listPage(ns: NamespaceRef, page?: PageRequest): Promise<Page>;
  /**
   * Keys of every namespace with their versions, ordered by (primary, secondary, key), after
   * `request.after`. Fewer than `limit` keys means there are no more (LDK's `list_all_keys`).
   */
  listAllKeys(request?: AllKeysRequest): Promise<KeyVersion[]>;
  /** Releases files, connections and timers. The store is unusable afterwards. */
  close(): Promise<void>;
}

/** Default and largest page size of `listPage`. */
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 1000;

/** Resolves a requested page size to the one a backend uses. */
export function effectivePageSize(requested: number | undefined): number {
  if (requested === undefined || requested <= 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

/** Orders keys by (primary namespace, secondary namespace, key), as `listAllKeys` returns them. */
export function compareKeys(a: KeyRef, b: KeyRef): number {
  const order = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return (
    order(a.primaryNamespace, b.primaryNamespace) ||
    order(a.secondaryNamespace, b.secondaryNamespace) ||
    order(a.key, b.key)
  );
}

/**
 * Derives `read` from `readVersioned`, so each backend implements reading once.
 */
export abstract class VersionedReads {
  abstract readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue>;

  async read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array> {
    return (await this.readVersioned(ref, options)).value;
  }
}
