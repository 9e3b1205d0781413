//! KVStore wrappers that inject faults and record traffic, for tier tests.

import { StoreError, type StoreErrorCode } from "../../src/store/errors.js";
import {
  isBackupLedger,
  type AllKeysPage,
  type AllKeysRequest,
  type BackupLedger,
  type CallOptions,
  type KVStore,
  type KeyRef,
  type ListOptions,
  type MutationOptions,
  type MutationOutcome,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type RemoveOptions,
  type TxnRequest,
  type TxnResult,
  type VersionedValue,
} from "../../src/store/types.js";
import { formatPath } from "../../src/store/validate.js";

export type Operation = "read" | "write" | "remove" | "txn" | "list" | "listPage" | "listAllKeys";

/**
 * Forwards everything to `inner`; subclasses override `before` to delay, fail or record. When
 * `inner` keeps a backup ledger, so does the wrapper (ledger calls pass through unchanged).
 */
export class ForwardingStore implements KVStore {
  constructor(readonly inner: KVStore) {
    if (isBackupLedger(inner)) {
      const ledger: BackupLedger = {
        settleOwed: (ref, version) => inner.settleOwed(ref, version),
        listOwed: (limit, after) => inner.listOwed(limit, after),
        countOwed: () => inner.countOwed(),
      };
      Object.assign(this, ledger);
    }
  }

  /** Runs before each call reaches `inner`. */
  protected async before(_operation: Operation, _target: string): Promise<void> {}

  async read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array> {
    return (await this.readVersioned(ref, options)).value;
  }
  async readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue> {
    await this.before("read", formatPath(ref));
    return this.inner.readVersioned(ref, options);
  }
  async write(ref: KeyRef, value: Uint8Array, options?: MutationOptions): Promise<MutationOutcome> {
    await this.before("write", formatPath(ref));
    return this.inner.write(ref, value, options);
  }
  async remove(ref: KeyRef, options?: RemoveOptions): Promise<MutationOutcome> {
    await this.before("remove", formatPath(ref));
    return this.inner.remove(ref, options);
  }
  async txn(request: TxnRequest): Promise<TxnResult> {
    await this.before("txn", request.operations.map(formatPath).join(","));
    return this.inner.txn(request);
  }
  async list(ns: NamespaceRef, options?: ListOptions): Promise<string[]> {
    await this.before("list", formatPath(ns));
    return this.inner.list(ns, options);
  }
  async listPage(ns: NamespaceRef, page?: PageRequest): Promise<Page> {
    await this.before("listPage", formatPath(ns));
    return this.inner.listPage(ns, page);
  }
  async listAllKeys(request?: AllKeysRequest): Promise<AllKeysPage> {
    await this.before("listAllKeys", "");
    return this.inner.listAllKeys(request);
  }
  highestVersion(): Promise<bigint> {
    return this.inner.highestVersion();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Delays every mutation by a random time in [minMs, maxMs] before applying it. */
export class DelayedStore extends ForwardingStore {
  constructor(inner: KVStore, private readonly minMs: number, private readonly maxMs: number) {
    super(inner);
  }
  protected override async before(operation: Operation): Promise<void> {
    if (operation === "write" || operation === "remove" || operation === "txn") {
      await sleep(this.minMs + Math.random() * (this.maxMs - this.minMs));
    }
  }
}

/** Fails the next `failures` calls of the given operations with `code`, then behaves. */
export class FlakyStore extends ForwardingStore {
  calls = 0;
  constructor(
    inner: KVStore,
    public failures: number,
    private readonly code: StoreErrorCode = "unavailable",
    private readonly operations: readonly Operation[] = ["read", "write", "remove", "txn", "list", "listPage", "listAllKeys"],
  ) {
    super(inner);
  }
  protected override async before(operation: Operation): Promise<void> {
    if (!this.operations.includes(operation)) return;
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      throw new StoreError(this.code, `injected ${this.code} failure`);
    }
  }
}

/** Records every call as `operation path`. */
export class RecordingStore extends ForwardingStore {
  readonly calls: string[] = [];
  protected override async before(operation: Operation, target: string): Promise<void> {
    this.calls.push(`${operation} ${target}`);
  }
  /** Calls of one operation. */
  of(operation: Operation): string[] {
    return this.calls.filter((call) => call.startsWith(`${operation} `));
  }
}
