//! KVStore wrappers that inject faults and record traffic, for tier tests.

import { StoreError, type StoreErrorCode } from "../../src/store/errors.js";
import type {
  AllKeysRequest,
  CallOptions,
  KeyVersion,
  VersionedValue,
  KVStore,
  KeyRef,
  MutationOptions,
  NamespaceRef,
  Page,
  PageRequest,
  RemoveOptions,
} from "../../src/store/types.js";
import { formatPath } from "../../src/store/validate.js";

type Operation = "read" | "write" | "remove" | "list" | "listPage" | "listAllKeys";

/** Forwards everything to `inner`; subclasses override `before` to delay, fail or record. */
export class ForwardingStore implements KVStore {
  constructor(readonly inner: KVStore) {}

  /** Runs before each call reaches `inner`. */
  protected async before(_operation: Operation, _target: string): Promise<void> {}

  async read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array> {
    return (await this.readVersioned(ref, options)).value;
  }
  async readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue> {
    await this.before("read", formatPath(ref));
    return this.inner.readVersioned(ref, options);
  }
  async write(ref: KeyRef, value: Uint8Array, options?: MutationOptions): Promise<void> {
    await this.before("write", formatPath(ref));
    return this.inner.write(ref, value, options);
  }
  async remove(ref: KeyRef, options?: RemoveOptions): Promise<void> {
    await this.before("remove", formatPath(ref));
    return this.inner.remove(ref, options);
  }
  async list(ns: NamespaceRef, options?: CallOptions): Promise<string[]> {
    await this.before("list", formatPath(ns));
    return this.inner.list(ns, options);
  }
  async listPage(ns: NamespaceRef, page?: PageRequest): Promise<Page> {
    await this.before("listPage", formatPath(ns));
    return this.inner.listPage(ns, page);
  }
  async listAllKeys(request?: AllKeysRequest): Promise<KeyVersion[]> {
    await this.before("listAllKeys", "");
    return this.inner.listAllKeys(request);
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
    if (operation === "write" || operation === "remove") {
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
    private readonly operations: readonly Operation[] = ["read", "write", "remove", "list", "listPage", "listAllKeys"],
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
