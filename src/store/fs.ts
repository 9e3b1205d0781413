//! The filesystem backend (`fs:DIR`): serves an LDK node's data directory in the layout of
//! rust-lightning's `lightning-persister` FilesystemStore, so the same directory stays readable by
//! LDK (and an existing LDK data directory can be served as is).
//!
//! Layout (store id "default"; the directory root is LDK's `data_dir`):
//! - `v2` (FilesystemStoreV2, LDK Node's current default, chosen for a new or empty directory):
//!   `<root>/<primary or "[empty]">/<secondary or "[empty]">/<key>`, always two directory levels.
//!   ChannelManager: `<root>/[empty]/[empty]/manager`; monitors: `<root>/monitors/[empty]/<key>`.
//! - `v1` (FilesystemStore): `<root>/[<primary>/[<secondary>/]]<key>`, empty namespaces left out.
//!   ChannelManager: `<root>/manager`; monitors: `<root>/monitors/<key>`.
//! `FsStore.open` detects the layout (`auto`): v1 when a valid key file sits at the top level or
//! directly in a primary namespace directory, v2 otherwise; it refuses a directory holding both,
//! and an explicit `layout` that contradicts the data (as LDK's v2 constructor refuses v1 data).
//! Names are LDK's alphabet (`A-Z a-z 0-9 _ -`, never `.`), so file names are the names verbatim.
//!
//! Other store ids: `<root>/.tierkv-stores.tmp/<encoded store id>/…` in the v2 layout. The `.tmp`
//! extension is deliberate: LDK skips every `.tmp` entry at every level (temp files), so LDK's
//! `list`/`list_all_keys`/migration never see this subtree, and it is no valid namespace name, so
//! it cannot collide. (LDK versions before the "skip store artifacts" change would descend into it
//! in `list_all_keys`; do not use non-default store ids on a directory an old LDK migrates.) The
//! encoded id keeps `A-Z a-z 0-9 _ -` and writes other UTF-8 bytes as `.xx`; an id whose encoding
//! exceeds 200 characters uses `~<sha256 hex>` and a `[store-id]` file holding the id.
//!
//! Writes: `<key>.<pid>-<n>.tmp` in the target directory (LDK: `<key>.<n>.tmp`; the pid keeps two
//! processes apart), write all bytes, fsync, rename over the target, fsync the directory; the
//! promise resolves after that. New namespace directories have their parents fsynced (once per
//! directory per process). Readers see the old or the new file, never a torn one. A crash leaves at
//! worst a temp file, which `list`, `listPage` and `listAllKeys` ignore (as LDK does); nothing
//! cleans them up. Removes: unlink + fsync of the directory (a lazy remove skips that fsync).
//! Directories are never removed. `durability: "cache"` (the `fsync: false` option) skips fsyncs.
//!
//! Versions and revisions: the layout has nowhere to keep them. Reads and `listAllKeys` report
//! version 0n and revision 0n, meaning "unknown" (as `VersionedValue` documents), and
//! `highestVersion()` is 0n. Every mutation is applied, versioned or not: ordering is enforced by
//! the server's versioned lock in the tier, not by this backend. `exact` and `revision` are
//! accepted and have no effect beyond the value. A Txn check on a revision never holds.
//!
//! Txn: the layout cannot apply several files atomically, so a batch with more than one operation
//! is refused (`failed-precondition`). A batch with at most one operation is atomic with respect to
//! this process: its checks and its operation run under the in-process locks of every key named.
//!
//! Concurrency: mutations of one key are serialized by an in-process lock, so they land in the
//! order they were called. The directory must not be written by another process (LDK itself, a
//! second tierkv) while it is served: nothing orders those writes against ours.
//!
//! ListPage order: v2: LDK's paginated order, newest mtime (ms) first, ties by key descending,
//! tokens carrying LDK's position `<16-digit mtime ms>:<key>`. As LDK does, an overwrite keeps the
//! file's mtime, so the order is creation order; in addition a key created in the same millisecond
//! as the previous creation in this process gets the next free millisecond as its mtime, so keys
//! created by one process are totally ordered (a burst can date mtimes a little into the future).
//! Files written by others keep their mtimes. Each key's mtime is read once per process, then kept
//! by this store's own writes, so a walk of N keys costs N stats, not N per page as in LDK.
//! v1: key order (LDK v1 has no paginated listing).
//! `list` returns keys sorted; `listAllKeys` walks (store id, primary, secondary, key) order.
//!
//! Files and directories whose names are not valid LDK names (`.tmp`/`.trash` leftovers,
//! `.DS_Store`, logs) are skipped everywhere, where LDK would fail the listing.
//!
//! Not a `BackupLedger`: there is no place to record owed keys in the same commit as a write, so
//! this backend cannot be the primary of the `degraded` backup policy.

import { createHash } from "node:crypto";
import { statSync, type Dirent } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { effectivePageSize, FS_MAX_ENCODED_STORE_ID } from "../limits.js";
import { notFound, StoreError } from "./errors.js";
import { checkHolds, type StoredState } from "./mutation-rules.js";
import { allKeysPage, allKeysStart, decodePageToken, encodePageToken } from "./page-token.js";
import {
  compareKeys,
  DEFAULT_STORE_ID,
  storeIdOf,
  VersionedReads,
  type AllKeysPage,
  type AllKeysRequest,
  type KVStore,
  type KeyRef,
  type KeyVersion,
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
} from "./types.js";
import { VSS_STORE_PREFIX } from "./names.js";
import { formatPath, validateKey, validateNamespace, validateTxn } from "./validate.js";

/** LDK's two on-disk layouts (see the module comment). */
export type FsLayout = "v1" | "v2";

export interface FsStoreOptions {
  /** `auto` (default): detect from the data, v2 for an empty directory. */
  readonly layout?: "auto" | FsLayout;
  /** fsync files and directories before a mutation resolves (default true). */
  readonly fsync?: boolean;
}

/** LDK v2's directory name for an empty namespace (brackets are outside the name alphabet). */
export const EMPTY_NAMESPACE_DIR = "[empty]";
/** Where store ids other than "default" live, under the root (skipped by LDK: `.tmp`). */
export const OTHER_STORES_DIR = ".tierkv-stores.tmp";
/** In a hashed store directory: the store id it holds. */
const STORE_ID_FILE = "[store-id]";

/** LDK's name alphabet; non-empty and at most 120 characters for a file or directory name. */
const VALID_NAME = /^[A-Za-z0-9_-]{1,120}$/;

/** Files statted per turn of the event loop when paging by mtime. */
const STAT_CHUNK = 1000;

const REFUSED_TXN = "the fs backend cannot apply atomic transactions; use sqlite or postgres";
const REFUSED_QUOTA = "the fs backend keeps no usage record, so it cannot enforce quotas; use sqlite, postgres or memory, or no quota";
const REFUSED_VSS = "the fs backend cannot hold VSS stores (their keys are not file names); use sqlite, postgres or memory";

/** Last mtime (ms) given to a created key, process-wide: creations get distinct milliseconds. */
let lastCreationMs = 0n;
/** Temp file counter, process-wide: two stores on one directory never share a temp name. */
let tmpCounter = 0;

function nextCreationMs(): bigint {
  const now = BigInt(Date.now());
  lastCreationMs = now > lastCreationMs ? now : lastCreationMs + 1n;
  return lastCreationMs;
}

function errnoOf(error: unknown): string | undefined {
  return typeof error === "object" && error !== null ? ((error as { code?: unknown }).code as string | undefined) : undefined;
}

function isMissing(error: unknown): boolean {
  const code = errnoOf(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

/** What a caller may learn of a filesystem failure: the kind, never a path. */
export function fsStoreError(error: unknown, operation: string, ref?: NamespaceRef & { key?: string }): StoreError {
  if (error instanceof StoreError) return error;
  const code = errnoOf(error);
  const what = ref === undefined ? operation : `${operation} ${formatPath(ref)}`;
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return new StoreError("resource-exhausted", `Failed to ${what}: the data directory's disk is full`, { cause: error });
    case "EACCES":
    case "EPERM":
    case "EROFS":
    case "EIO":
    case "EMFILE":
    case "ENFILE":
    case "EBUSY":
    case "EAGAIN":
      return new StoreError("unavailable", `Failed to ${what}: the data directory could not be accessed (${code})`, { cause: error });
    case "EISDIR":
    case "ENOTDIR":
    case "EEXIST":
    case "ENOTEMPTY":
      return new StoreError(
        "failed-precondition",
        `Failed to ${what}: a file or directory of the same name is in the way (LDK's v1 layout cannot hold a key and a namespace of one name)`,
        { cause: error },
      );
    default:
      return StoreError.from(error);
  }
}

/** The directory name of a store id other than "default" (see the module comment). */
export function encodeStoreId(storeId: string): string {
  let out = "";
  for (const byte of Buffer.from(storeId, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `.${byte.toString(16).padStart(2, "0")}`;
  }
  if (out.length <= FS_MAX_ENCODED_STORE_ID) return out;
  return `~${createHash("sha256").update(storeId, "utf8").digest("hex")}`;
}

/** The store id of a readable store directory name; undefined for a hashed or foreign one. */
function decodeStoreDirName(name: string): string | undefined {
  if (!/^(?:[A-Za-z0-9_-]|\.[0-9a-f]{2})+$/.test(name)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < name.length; ) {
    if (name[i] === ".") {
      bytes.push(parseInt(name.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(name.charCodeAt(i));
      i += 1;
    }
  }
  const id = Buffer.from(bytes).toString("utf8");
  // Only the canonical encoding names a store (one directory per id).
  return encodeStoreId(id) === name ? id : undefined;
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** One directory's valid names, split into regular files and directories (unreadable: none). */
async function entriesOf(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  let dirents: Dirent[];
  try {
    dirents = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return { files: [], dirs: [] };
    throw error;
  }
  const files: string[] = [];
  const dirs: string[] = [];
  for (const dirent of dirents) {
    const name = dirent.name;
    if (!VALID_NAME.test(name) && name !== EMPTY_NAMESPACE_DIR) continue;
    let isFile = dirent.isFile();
    let isDir = dirent.isDirectory();
    if (!isFile && !isDir) {
      // A symlink, or a filesystem that does not report types: ask stat (following links).
      try {
        const info = await stat(join(dir, name));
        isFile = info.isFile();
        isDir = info.isDirectory();
      } catch (error) {
        if (isMissing(error)) continue;
        throw error;
      }
    }
    if (isFile && name !== EMPTY_NAMESPACE_DIR) files.push(name);
    else if (isDir) dirs.push(name);
  }
  return { files, dirs };
}

/** The valid key files of one namespace directory. */
async function keysIn(dir: string): Promise<string[]> {
  return (await entriesOf(dir)).files;
}

/** A namespace pair that exists on disk, with its directory. */
interface NamespaceDir {
  readonly primaryNamespace: string;
  readonly secondaryNamespace: string;
  readonly dir: string;
}

/** Every namespace directory under `root` in `layout`, sorted by (primary, secondary). */
async function namespacesOf(root: string, layout: FsLayout): Promise<NamespaceDir[]> {
  const found: NamespaceDir[] = [];
  const top = await entriesOf(root);
  if (layout === "v1") {
    found.push({ primaryNamespace: "", secondaryNamespace: "", dir: root });
    for (const primary of top.dirs) {
      if (primary === EMPTY_NAMESPACE_DIR) continue;
      const primaryDir = join(root, primary);
      found.push({ primaryNamespace: primary, secondaryNamespace: "", dir: primaryDir });
      for (const secondary of (await entriesOf(primaryDir)).dirs) {
        if (secondary === EMPTY_NAMESPACE_DIR) continue;
        found.push({ primaryNamespace: primary, secondaryNamespace: secondary, dir: join(primaryDir, secondary) });
      }
    }
  } else {
    for (const primaryName of top.dirs) {
      const primary = primaryName === EMPTY_NAMESPACE_DIR ? "" : primaryName;
      const primaryDir = join(root, primaryName);
      for (const secondaryName of (await entriesOf(primaryDir)).dirs) {
        const secondary = secondaryName === EMPTY_NAMESPACE_DIR ? "" : secondaryName;
        // ("", s) is no valid namespace pair: LDK never writes `[empty]/<s>`.
        if (primary === "" && secondary !== "") continue;
        found.push({ primaryNamespace: primary, secondaryNamespace: secondary, dir: join(primaryDir, secondaryName) });
      }
    }
  }
  return found.sort((a, b) => byName(a.primaryNamespace, b.primaryNamespace) || byName(a.secondaryNamespace, b.secondaryNamespace));
}

/** What the data under `root` shows of each layout. */
async function layoutEvidence(root: string): Promise<{ v1: boolean; v2: boolean }> {
  const top = await entriesOf(root);
  let v1 = top.files.length > 0;
  let v2 = top.dirs.includes(EMPTY_NAMESPACE_DIR);
  for (const primary of top.dirs) {
    if (v1 && v2) break;
    if (primary === EMPTY_NAMESPACE_DIR) continue;
    const inner = await entriesOf(join(root, primary));
    if (inner.files.length > 0) v1 = true;
    if (inner.dirs.includes(EMPTY_NAMESPACE_DIR)) v2 = true;
  }
  return { v1, v2 };
}

/** A namespace's place on disk: its directory and that directory's layout. */
interface Place {
  readonly root: string;
  readonly layout: FsLayout;
  readonly dir: string;
}

/** Per-path mutexes: mutations of one key run one at a time, in call order. */
class PathLocks {
  private readonly tails = new Map<string, Promise<void>>();

  private async acquire(path: string): Promise<() => void> {
    const previous = this.tails.get(path) ?? Promise.resolve();
    let release!: () => void;
    const tail = previous.then(() => new Promise<void>((resolveRelease) => (release = resolveRelease)));
    this.tails.set(path, tail);
    await previous;
    return () => {
      release();
      if (this.tails.get(path) === tail) this.tails.delete(path);
    };
  }

  /** Runs `work` holding the locks of every path (taken in sorted order: no deadlock). */
  async with<T>(paths: readonly string[], work: () => Promise<T>): Promise<T> {
    const releases: Array<() => void> = [];
    try {
      for (const path of [...new Set(paths)].sort()) releases.push(await this.acquire(path));
      return await work();
    } finally {
      for (const release of releases.reverse()) release();
    }
  }
}

/** Every value, as the store reports it: no version or revision is known. */
const UNKNOWN: StoredState = { version: 0n, revision: 0n };

export class FsStore extends VersionedReads implements KVStore {
  private readonly locks = new PathLocks();
  /** Directories known to exist with their entries durable (made or fsynced by this process). */
  private readonly durableDirs = new Set<string>();
  /** Mutations under way: `close` waits for them. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /**
   * The mtime (ms) of each key of the v2 directories paged so far: stat once, then kept by this
   * store's own writes and removes (the directory has no other writer while served).
   */
  private readonly mtimes = new Map<string, Map<string, bigint>>();
  /** The store ids of hashed store directories met so far, by directory. */
  private readonly hashedIds = new Map<string, string>();
  private readonly fsync: boolean;
  private closed = false;

  private constructor(
    /** The LDK data directory (absolute). */
    readonly root: string,
    /** The default store's layout. */
    readonly layout: FsLayout,
    options: FsStoreOptions,
  ) {
    super();
    this.fsync = options.fsync ?? true;
    this.durableDirs.add(root);
  }

  /** Opens (creating it when missing) the data directory `root`; see the module comment. */
  static async open(root: string, options: FsStoreOptions = {}): Promise<FsStore> {
    const dir = resolve(root);
    let layout: FsLayout;
    try {
      const created = await mkdir(dir, { recursive: true });
      if (created !== undefined && (options.fsync ?? true)) {
        for (let d = dir; ; d = dirname(d)) {
          await syncDir(dirname(d));
          if (d === created || dirname(d) === d) break;
        }
      }
      const evidence = await layoutEvidence(dir);
      const wanted = options.layout ?? "auto";
      if (evidence.v1 && evidence.v2) {
        throw new StoreError("failed-precondition", "the data directory holds both LDK's v1 and v2 layouts; migrate it first");
      }
      if (wanted === "v2" && evidence.v1) {
        throw new StoreError("failed-precondition", "the data directory holds LDK FilesystemStore (v1) data; open it with layout v1");
      }
      if (wanted === "v1" && evidence.v2) {
        throw new StoreError("failed-precondition", "the data directory holds LDK FilesystemStoreV2 data; open it with layout v2");
      }
      layout = wanted === "auto" ? (evidence.v1 ? "v1" : "v2") : wanted;
    } catch (error) {
      throw fsStoreError(error, "open the data directory");
    }
    return new FsStore(dir, layout, options);
  }

  // ---- places -------------------------------------------------------------------------------

  private storeRoot(storeId: string): string {
    if (storeId === DEFAULT_STORE_ID) return this.root;
    // VSS keys may hold `/` and `..`: as file names they would leave the store's directory.
    if (storeId.startsWith(VSS_STORE_PREFIX)) throw new StoreError("failed-precondition", REFUSED_VSS);
    const name = encodeStoreId(storeId);
    const root = join(this.root, OTHER_STORES_DIR, name);
    if (name.startsWith("~")) this.hashedIds.set(root, storeId);
    return root;
  }

  private place(ns: NamespaceRef): Place {
    const storeId = storeIdOf(ns);
    const root = this.storeRoot(storeId);
    const layout = storeId === DEFAULT_STORE_ID ? this.layout : "v2";
    const dir =
      layout === "v2"
        ? join(root, ns.primaryNamespace || EMPTY_NAMESPACE_DIR, ns.secondaryNamespace || EMPTY_NAMESPACE_DIR)
        : join(root, ns.primaryNamespace, ns.secondaryNamespace);
    return { root, layout, dir };
  }

  private keyPath(ref: KeyRef): string {
    return join(this.place(ref).dir, ref.key);
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError("unavailable", "the store is closed");
  }

  /** Runs a mutation: counted for `close`, errors made safe to show. */
  private mutation<T>(operation: string, ref: KeyRef, work: () => Promise<T>): Promise<T> {
    this.checkOpen();
    const running = work().catch((error: unknown) => {
      throw fsStoreError(error, operation, ref);
    });
    this.inFlight.add(running);
    const forget = (): void => void this.inFlight.delete(running);
    running.then(forget, forget);
    return running;
  }

  // ---- reads --------------------------------------------------------------------------------

  async readVersioned(ref: KeyRef): Promise<VersionedValue> {
    validateKey(ref, "read");
    this.checkOpen();
    let data: Buffer;
    try {
      data = await readFile(this.keyPath(ref));
    } catch (error) {
      if (isMissing(error) || errnoOf(error) === "EISDIR") throw notFound("read", formatPath(ref));
      throw fsStoreError(error, "read", ref);
    }
    return { value: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), ...UNKNOWN };
  }

  /** Whether the key's file exists (a Txn check's view of its state). */
  private async stateOf(ref: KeyRef): Promise<StoredState | undefined> {
    try {
      return (await stat(this.keyPath(ref))).isFile() ? UNKNOWN : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  // ---- mutations ----------------------------------------------------------------------------

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "write");
    if (options.quota !== undefined) throw new StoreError("failed-precondition", REFUSED_QUOTA);
    const path = this.keyPath(ref);
    return this.mutation("write", ref, () => this.locks.with([path], () => this.applyWrite(ref, value)));
  }

  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "remove");
    if (options.quota !== undefined) throw new StoreError("failed-precondition", REFUSED_QUOTA);
    const path = this.keyPath(ref);
    return this.mutation("remove", ref, () => this.locks.with([path], () => this.applyRemove(ref, options.lazy === true)));
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    validateTxn(request);
    if (request.operations.length > 1) throw new StoreError("failed-precondition", REFUSED_TXN);
    if (request.quota !== undefined) throw new StoreError("failed-precondition", REFUSED_QUOTA);
    const refs: KeyRef[] = [...request.checks, ...request.operations];
    const paths = refs.map((ref) => this.keyPath(ref));
    return this.mutation("apply a transaction to", refs[0]!, () =>
      this.locks.with(paths, async (): Promise<TxnResult> => {
        const states = await Promise.all(request.checks.map((check) => this.stateOf(check)));
        const failedCheck = request.checks.findIndex((check, i) => !checkHolds(check, states[i]));
        if (failedCheck >= 0) return { succeeded: false, failedCheck };
        const operation = request.operations[0];
        if (operation === undefined) return { succeeded: true, outcomes: [], revisions: [], versions: [] };
        const outcome =
          operation.kind === "write" ? await this.applyWrite(operation, operation.value) : await this.applyRemove(operation, false);
        return { succeeded: true, outcomes: [outcome], revisions: [0n], versions: [0n] };
      }),
    );
  }

  /** Temp file, fsync, rename over the target, fsync the directory (caller holds the key's lock). */
  private async applyWrite(ref: KeyRef, value: Uint8Array): Promise<MutationOutcome> {
    const { root, layout, dir } = this.place(ref);
    const path = join(dir, ref.key);
    await this.ensureDir(root, dir);
    // v2 keeps a key's first mtime across overwrites (LDK's creation order for pagination).
    let mtimeMs: bigint | undefined;
    if (layout === "v2") {
      try {
        mtimeMs = (await stat(path, { bigint: true })).mtimeNs / 1_000_000n;
      } catch (error) {
        if (!isMissing(error)) throw error;
        mtimeMs = nextCreationMs();
      }
    }
    try {
      await replaceFile(path, value, mtimeMs, this.fsync);
    } catch (error) {
      if (!isMissing(error)) throw error;
      // The directory went away behind our back: make it again.
      this.durableDirs.delete(dir);
      await this.ensureDir(root, dir);
      await replaceFile(path, value, mtimeMs, this.fsync);
    }
    if (mtimeMs !== undefined) this.mtimes.get(dir)?.set(ref.key, mtimeMs);
    return "applied";
  }

  /** Unlink, then fsync the directory unless lazy (caller holds the key's lock). */
  private async applyRemove(ref: KeyRef, lazy: boolean): Promise<MutationOutcome> {
    const path = this.keyPath(ref);
    try {
      if (!(await lstat(path)).isFile()) return "applied";
      await unlink(path);
      this.mtimes.get(dirname(path))?.delete(ref.key);
    } catch (error) {
      if (isMissing(error)) return "applied";
      throw error;
    }
    if (this.fsync && !lazy) await syncDir(dirname(path));
    return "applied";
  }

  /** Makes `dir` (under `root`) and fsyncs the parents of what it made, once per process. */
  private async ensureDir(root: string, dir: string): Promise<void> {
    if (this.durableDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    if (this.fsync) {
      // Every level between the data directory and `dir`: its entry in its parent is durable.
      for (let d = dir; d !== this.root && d.startsWith(this.root); d = dirname(d)) {
        if (this.durableDirs.has(d)) break;
        await syncDir(dirname(d));
        this.durableDirs.add(d);
      }
    }
    this.durableDirs.add(dir);
    if (root !== this.root) await this.recordStoreId(root);
  }

  /** A hashed store directory gets its `[store-id]` file (before any of its keys). */
  private async recordStoreId(root: string): Promise<void> {
    const storeId = this.hashedIds.get(root);
    const storeIdFile = join(root, STORE_ID_FILE);
    if (storeId === undefined || this.durableDirs.has(storeIdFile)) return;
    await replaceFile(storeIdFile, Buffer.from(storeId, "utf8"), undefined, this.fsync);
    this.durableDirs.add(storeIdFile);
  }

  // ---- listings -----------------------------------------------------------------------------

  async list(ns: NamespaceRef, options: ListOptions = {}): Promise<string[]> {
    validateNamespace(ns, "list");
    this.checkOpen();
    try {
      const keys = (await keysIn(this.place(ns).dir)).sort(byName);
      return options.limit === undefined ? keys : keys.slice(0, options.limit);
    } catch (error) {
      throw fsStoreError(error, "list", ns);
    }
  }

  async listPage(ns: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    validateNamespace(ns, "list");
    this.checkOpen();
    const place = this.place(ns);
    const size = effectivePageSize(page.pageSize);
    const position = page.pageToken ? decodePageToken(ns, page.pageToken) : undefined;
    try {
      return place.layout === "v2" ? await this.pageByMtime(ns, place.dir, size, position) : await this.pageByKey(ns, place.dir, size, position);
    } catch (error) {
      throw fsStoreError(error, "list", ns);
    }
  }

  /** LDK v2's order: newest mtime (ms) first, ties by key descending; position `<ms:016>:<key>`. */
  private async pageByMtime(ns: NamespaceRef, dir: string, size: number, position: string | undefined): Promise<Page> {
    let after: { ms: bigint; key: string } | undefined;
    if (position !== undefined) {
      const match = /^([0-9]{16}):(.*)$/s.exec(position);
      if (match === null) throw new StoreError("invalid-argument", `Failed to list ${formatPath(ns)}: malformed page_token`);
      after = { ms: BigInt(match[1]!), key: match[2]! };
    }
    const keys = await keysIn(dir);
    let known = this.mtimes.get(dir);
    if (known === undefined) this.mtimes.set(dir, (known = new Map()));
    const present = new Set(keys);
    for (const key of known.keys()) if (!present.has(key)) known.delete(key);
    // Unknown mtimes: synchronous stats, a bounded chunk per turn of the event loop (many times
    // faster than one promise per file; no turn blocks for more than a few milliseconds).
    const unknown = keys.filter((key) => !known.has(key));
    for (let i = 0; i < unknown.length; i += STAT_CHUNK) {
      if (i > 0) await yieldToEventLoop();
      for (const key of unknown.slice(i, i + STAT_CHUNK)) {
        const info = statSync(join(dir, key), { bigint: true, throwIfNoEntry: false });
        if (info !== undefined) known.set(key, info.mtimeNs / 1_000_000n); // else removed since the listing
      }
    }
    const entries: Array<{ key: string; ms: bigint }> = [];
    for (const key of keys) {
      const ms = known.get(key);
      if (ms !== undefined) entries.push({ key, ms });
    }
    entries.sort((a, b) => (a.ms !== b.ms ? (a.ms > b.ms ? -1 : 1) : byName(b.key, a.key)));
    // The token's key need not exist any more: start at the first entry after its position.
    const start = after === undefined ? 0 : entries.findIndex((e) => e.ms < after.ms || (e.ms === after.ms && e.key < after.key));
    const from = start < 0 ? entries.length : start;
    const taken = entries.slice(from, from + size);
    const last = taken.at(-1);
    const more = from + size < entries.length;
    return {
      keys: taken.map((e) => e.key),
      nextPageToken: more && last ? encodePageToken(ns, `${last.ms.toString().padStart(16, "0")}:${last.key}`) : "",
    };
  }

  /** Key order (the v1 layout); position: the last key returned. */
  private async pageByKey(ns: NamespaceRef, dir: string, size: number, position: string | undefined): Promise<Page> {
    const keys = (await keysIn(dir)).sort(byName).filter((key) => position === undefined || key > position);
    const taken = keys.slice(0, size);
    return { keys: taken, nextPageToken: keys.length > size ? encodePageToken(ns, taken.at(-1)!) : "" };
  }

  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    if (!request.allStores) validateNamespace({ storeId: storeIdOf(request), primaryNamespace: "", secondaryNamespace: "" }, "list all keys");
    const start = allKeysStart(request);
    const limit = effectivePageSize(request.limit);
    this.checkOpen();
    try {
      const stores = request.allStores ? await this.storeIds() : [start.storeId];
      const rows: KeyVersion[] = [];
      for (const storeId of stores) {
        if (storeId < start.storeId) continue;
        const root = this.storeRoot(storeId);
        const layout = storeId === DEFAULT_STORE_ID ? this.layout : "v2";
        for (const ns of await namespacesOf(root, layout)) {
          if (storeId === start.storeId && byName(ns.primaryNamespace, start.primaryNamespace) < 0) continue;
          if (
            storeId === start.storeId &&
            ns.primaryNamespace === start.primaryNamespace &&
            byName(ns.secondaryNamespace, start.secondaryNamespace) < 0
          ) {
            continue;
          }
          for (const key of (await keysIn(ns.dir)).sort(byName)) {
            const row: KeyVersion = { storeId, primaryNamespace: ns.primaryNamespace, secondaryNamespace: ns.secondaryNamespace, key, ...UNKNOWN };
            if (compareKeys(row, start) <= 0) continue;
            rows.push(row);
            if (rows.length > limit) return allKeysPage(rows, limit);
          }
        }
      }
      return allKeysPage(rows, limit);
    } catch (error) {
      throw fsStoreError(error, "list all keys");
    }
  }

  /** Every store id with a directory (and "default"), sorted as `listAllKeys` orders them. */
  private async storeIds(): Promise<string[]> {
    const ids = [DEFAULT_STORE_ID];
    const base = join(this.root, OTHER_STORES_DIR);
    for (const name of (await entriesOfAnyName(base)).dirs) {
      let id = decodeStoreDirName(name);
      if (id === undefined && name.startsWith("~")) {
        try {
          id = await readFile(join(base, name, STORE_ID_FILE), "utf8");
        } catch (error) {
          if (!isMissing(error)) throw error;
        }
        if (id !== undefined && encodeStoreId(id) !== name) id = undefined;
      }
      if (id !== undefined && id !== DEFAULT_STORE_ID) ids.push(id);
    }
    return ids.sort(byName);
  }

  async highestVersion(): Promise<bigint> {
    return 0n;
  }

  async close(): Promise<void> {
    this.closed = true;
    // Mutations already accepted finish (durably) before close resolves.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }
}

/** The directories of `dir` whatever their names (store directories are not LDK names). */
async function entriesOfAnyName(dir: string): Promise<{ dirs: string[] }> {
  try {
    const dirents = await readdir(dir, { withFileTypes: true });
    return { dirs: dirents.filter((d) => d.isDirectory()).map((d) => d.name) };
  } catch (error) {
    if (isMissing(error)) return { dirs: [] };
    throw error;
  }
}

/**
 * Replaces `path` atomically: `<path>.<pid>-<n>.tmp` written in full (with `mtimeMs` as its
 * mtime when given), fsynced, renamed over `path`, then the directory fsynced. The temp file is
 * removed on failure.
 */
async function replaceFile(path: string, value: Uint8Array, mtimeMs: bigint | undefined, fsync: boolean): Promise<void> {
  const tmp = `${path}.${process.pid}-${tmpCounter++}.tmp`;
  try {
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(value);
      // Half a millisecond in: the time keeps its millisecond through the conversion to a float.
      if (mtimeMs !== undefined) await handle.utimes(Date.now() / 1000, (Number(mtimeMs) + 0.5) / 1000);
      if (fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  if (fsync) await syncDir(dirname(path));
}

/** fsync a directory: its entries (a rename, an unlink, a new subdirectory) are durable after. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
