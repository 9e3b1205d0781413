//! `tierkv migrate`: copies every store, namespace and key of one KVStore into another with its
//! version and revision (exact writes), in the source's `listAllKeys` order, a bounded number of
//! writes in flight (so a remote target receives them in batches), then verifies both sides.
//!
//! Resuming: a checkpoint file records the source position (page token and last key) up to which
//! every key is on the target. It is written before the first write and then about every second;
//! keys copied after the recorded position are copied again on a rerun, which is harmless because
//! exact writes store the same value, version and revision again. Once the copy is verified the
//! checkpoint is removed.
//!
//! The source should not be written while it is migrated: a key written after the walk passed it
//! is not copied (and verification reports the difference); a key removed before its turn is
//! skipped and counted as vanished.

import { StoreError } from "../store/errors.js";
import { redactStoreUri } from "../store/redact.js";
import { scanAllKeys } from "../store/scan.js";
import { parseStoreUri } from "../store/store-uri.js";
import { DEFAULT_PAGE_SIZE } from "../limits.js";
import type { AllKeysPage, KVStore, KeyRef, KeyVersion, NamespaceRef } from "../store/types.js";
import {
  checkpointMatches,
  newCheckpoint,
  normalizeStoreUri,
  readCheckpoint,
  removeCheckpoint,
  writeCheckpoint,
  type Checkpoint,
} from "./checkpoint.js";
import { AbortedError, forEachConcurrent } from "./pool.js";
import { Progress, type ProgressStream } from "./progress.js";
import { compareDigests, digestStore, type Mismatch, type StoreDigest } from "./verify.js";

/** Writes in flight by default: enough for a remote target to fill its batches. */
export const DEFAULT_CONCURRENCY = 32;
/** Most milliseconds between checkpoint saves while copying. */
const CHECKPOINT_INTERVAL_MS = 1_000;

/** A refusal the operator can fix by changing the command (exit 2 on the command line). */
export class MigrateUsageError extends Error {
  override readonly name = "MigrateUsageError";
}

/** The copy or the verification failed (exit 1). */
export class MigrateError extends Error {
  override readonly name = "MigrateError";
}

/** Whether a store keeps versions and revisions: fs never does; a remote one depends on its backend. */
export type VersionKeeping = "yes" | "no" | "unknown";

/** What the scheme of `uri` says about keeping versions. */
export function versionKeepingOf(uri: string): VersionKeeping {
  const { kind } = parseStoreUri(uri);
  if (kind === "fs") return "no";
  if (kind === "remote") return "unknown";
  return "yes";
}

/**
 * Versions are compared when the source knows a version for every key and the target can keep
 * them: not fs, and a remote target only when it reports versions (its backend may be fs).
 */
export function shouldCompareVersions(from: VersionKeeping, to: VersionKeeping, source: StoreDigest, target: StoreDigest): boolean {
  if (from === "no" || to === "no") return false;
  if (source.keys === 0 || source.versionedKeys !== source.keys) return false;
  return to === "yes" || target.versionedKeys > 0;
}

function isNotFound(error: unknown): boolean {
  return error instanceof StoreError && error.code === "not-found";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `store alice, a/b/key` for messages. */
export function describeKey(ref: KeyRef & { readonly storeId: string }): string {
  const path = [ref.primaryNamespace, ref.secondaryNamespace, ref.key].filter((part) => part !== "").join("/");
  return `store ${ref.storeId}, key ${path}`;
}

function sameKey(a: KeyVersion, b: KeyRef & { readonly storeId: string }): boolean {
  return (
    a.storeId === b.storeId &&
    a.primaryNamespace === b.primaryNamespace &&
    a.secondaryNamespace === b.secondaryNamespace &&
    a.key === b.key
  );
}

/** `1.5 MiB` */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export interface StoreCount {
  readonly storeId: string;
  readonly keys: number;
  readonly namespaces: number;
}

/** Keys and namespaces per store, from one walk of `listAllKeys` (no values read). */
export async function countKeys(store: KVStore, signal?: AbortSignal): Promise<StoreCount[]> {
  const counts = new Map<string, { keys: number; namespaces: Set<string> }>();
  for await (const ref of scanAllKeys(store, { allStores: true, signal })) {
    let count = counts.get(ref.storeId);
    if (count === undefined) counts.set(ref.storeId, (count = { keys: 0, namespaces: new Set() }));
    count.keys++;
    count.namespaces.add(`${ref.primaryNamespace}\0${ref.secondaryNamespace}`);
  }
  return [...counts].map(([storeId, count]) => ({ storeId, keys: count.keys, namespaces: count.namespaces.size }));
}

/** The first key of any store of `store`, or undefined when it holds none (one page of one key). */
export async function firstKey(store: KVStore, signal?: AbortSignal): Promise<KeyVersion | undefined> {
  const page = await store.listAllKeys({ allStores: true, limit: 1, signal });
  return page.keys[0];
}

export interface VerifyOptions {
  readonly source: KVStore;
  readonly target: KVStore;
  readonly from: string;
  readonly to: string;
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  readonly progressStream?: ProgressStream;
  readonly progressIntervalMs?: number;
  /** Expected keys on each side, for the progress total. */
  readonly expectedKeys?: number;
  /** Compare only these stores (those migrated); every store when absent. */
  readonly storeIds?: readonly string[];
}

export interface VerifyReport {
  readonly source: StoreDigest;
  readonly target: StoreDigest;
  readonly versionsCompared: boolean;
  readonly mismatches: readonly Mismatch[];
}

/** Digests both sides (at once) and compares them per (store, namespace). */
export async function verifyStores(options: VerifyOptions): Promise<VerifyReport> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  let read = 0;
  const total = (options.expectedKeys ?? 0) * 2;
  const progress = new Progress({
    label: "migrate verify",
    unit: "keys read",
    stream: options.progressStream,
    intervalMs: options.progressIntervalMs,
  });
  const onKey = (): void => {
    read++;
    progress.set(read, Math.max(total, read), "source and target");
  };
  progress.set(0, total, "source and target");
  try {
    const digest = (store: KVStore, side: string): Promise<StoreDigest> =>
      digestStore(store, { concurrency: Math.max(1, Math.ceil(concurrency / 2)), signal: options.signal, storeIds: options.storeIds, onKey }).catch((error: unknown) => {
        if (error instanceof AbortedError) throw error;
        throw new MigrateError(`verification failed reading the ${side} (${normalizeStoreUri(options[side === "source" ? "from" : "to"])}): ${messageOf(error)}`);
      });
    const [source, target] = await Promise.all([digest(options.source, "source"), digest(options.target, "target")]);
    const versionsCompared = shouldCompareVersions(versionKeepingOf(options.from), versionKeepingOf(options.to), source, target);
    return { source, target, versionsCompared, mismatches: compareDigests(source, target, versionsCompared) };
  } finally {
    progress.finish();
  }
}

/** One line naming the first few mismatching namespaces. */
export function mismatchMessage(mismatches: readonly Mismatch[]): string {
  const shown = mismatches.slice(0, 3).map((m) => m.message);
  const more = mismatches.length > 3 ? `; and ${mismatches.length - 3} more namespaces` : "";
  return `verification failed: ${shown.join("; ")}${more}`;
}

export interface MigrateOptions {
  readonly source: KVStore;
  readonly target: KVStore;
  /** The URIs as given: recorded in the checkpoint and matched when resuming; their schemes decide whether versions are compared. */
  readonly from: string;
  readonly to: string;
  readonly checkpointPath: string;
  /** Copy over a non-empty target; keys of the source's stores that the source lacks are removed from it. */
  readonly overwrite?: boolean;
  /** With `overwrite`: the target's stores the source lacks are emptied too (otherwise left alone). */
  readonly pruneOtherStores?: boolean;
  /** Mutations in flight (DEFAULT_CONCURRENCY). */
  readonly concurrency?: number;
  /** Stops the migration: the checkpoint is saved and a `MigrateError` thrown. */
  readonly signal?: AbortSignal;
  readonly progressStream?: ProgressStream;
  readonly progressIntervalMs?: number;
  /** Told of what happens besides progress (resuming). */
  readonly note?: (line: string) => void;
  /** Test hook: runs after the copy, before the verification. */
  readonly beforeVerify?: () => Promise<void>;
}

export interface MigrateReport {
  /** Resumed from a checkpoint. */
  readonly resumed: boolean;
  /** Keys written by this run, and their value bytes. */
  readonly copied: number;
  readonly copiedBytes: number;
  /** Keys listed on the source but gone before their turn. */
  readonly vanished: number;
  /** Keys removed from the target because the source lacks them (`overwrite`). */
  readonly removed: number;
  /** Of them, keys of stores the source lacks (`pruneOtherStores`). */
  readonly removedFromOtherStores: number;
  readonly verification: VerifyReport;
}

/**
 * Migrates `source` into `target` (see the module comment). Throws `MigrateUsageError` for a
 * non-empty target without `overwrite` or a checkpoint of another migration, `MigrateError` when a
 * copy fails, the signal fires (both leave the checkpoint to resume from) or the verification
 * finds a difference (the checkpoint is removed: a rerun needs `overwrite`).
 */
export async function migrate(options: MigrateOptions): Promise<MigrateReport> {
  const { source, target, checkpointPath, signal } = options;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  let checkpoint = readCheckpoint(checkpointPath);
  if (checkpoint !== undefined && !checkpointMatches(checkpoint, options.from, options.to)) {
    throw new MigrateUsageError(
      `checkpoint ${checkpointPath} belongs to a migration from ${redactStoreUri(checkpoint.from)} to ${redactStoreUri(checkpoint.to)}; remove it or pass another --checkpoint`,
    );
  }
  const resumed = checkpoint !== undefined;
  if (checkpoint === undefined) {
    if (!options.overwrite) {
      const first = await firstKey(target, signal);
      if (first !== undefined) {
        throw new MigrateUsageError(
          `the target ${normalizeStoreUri(options.to)} is not empty (${describeKey(first)}); ` +
            "pass --overwrite to copy over it (keys of the source's stores that the source lacks are then removed from it), or migrate into an empty store",
        );
      }
    }
    checkpoint = newCheckpoint(options.from, options.to, options.overwrite === true, options.pruneOtherStores === true);
    writeCheckpoint(checkpointPath, checkpoint);
  } else {
    const after = checkpoint.lastKey === null ? "from the start" : `after ${describeKey(checkpoint.lastKey)}`;
    options.note?.(`resuming the migration (${checkpoint.phase}) from checkpoint ${checkpointPath}, ${after}: ${checkpoint.copied} keys copied before`);
  }

  const sourceCounts = await countKeys(source, signal);
  const sourceKeys = sourceCounts.reduce((sum, count) => sum + count.keys, 0);
  let copied = 0;
  let copiedBytes = 0;
  let vanished = 0;
  let removed = { total: 0, otherStores: 0 };

  if (checkpoint.phase === "copy") {
    const result = await copyPhase(options, checkpoint, sourceKeys, concurrency);
    ({ copied, copiedBytes, vanished, checkpoint } = result);
    checkpoint = { ...checkpoint, phase: checkpoint.overwrite ? "prune" : "verify" };
    writeCheckpoint(checkpointPath, checkpoint);
  }
  if (checkpoint.phase === "prune") {
    removed = await prunePhase(options, checkpoint.pruneOtherStores, concurrency);
    checkpoint = { ...checkpoint, phase: "verify" };
    writeCheckpoint(checkpointPath, checkpoint);
  }

  await options.beforeVerify?.();
  let verification: VerifyReport;
  try {
    // The target's other stores are compared only when the migration emptied them.
    const storeIds = checkpoint.pruneOtherStores ? undefined : sourceCounts.map((count) => count.storeId);
    verification = await verifyStores({ ...options, concurrency, expectedKeys: sourceKeys, storeIds });
  } catch (error) {
    if (error instanceof AbortedError) throw interrupted(checkpointPath, "verifying");
    throw error;
  }
  // The copy is complete either way: a difference is not repaired by resuming, so the checkpoint
  // goes (a rerun with --overwrite copies everything again).
  removeCheckpoint(checkpointPath);
  if (verification.mismatches.length > 0) {
    throw new MigrateError(`${mismatchMessage(verification.mismatches)}; rerun with --overwrite to copy again`);
  }
  return { resumed, copied, copiedBytes, vanished, removed: removed.total, removedFromOtherStores: removed.otherStores, verification };
}

function interrupted(checkpointPath: string, what: string): MigrateError {
  return new MigrateError(`interrupted while ${what}; rerun the same command to resume (checkpoint ${checkpointPath})`);
}

interface Listed {
  readonly ref: KeyVersion;
  /** The token the key's page was fetched with. */
  readonly pageToken: string;
  readonly seq: number;
}

/** The source's keys from the checkpoint's position on, the next page fetched while this one is copied. */
async function* keysAfter(source: KVStore, checkpoint: Checkpoint, signal: AbortSignal | undefined): AsyncGenerator<Listed> {
  const fetch = (pageToken: string): Promise<AllKeysPage> => {
    const page = source.listAllKeys({ allStores: true, pageToken, limit: DEFAULT_PAGE_SIZE, signal });
    page.catch(() => undefined); // awaited below; a prefetch abandoned on failure must not go unhandled
    return page;
  };
  let token = checkpoint.pageToken;
  let skipThrough = checkpoint.lastKey;
  let next = fetch(token);
  let seq = 0;
  for (;;) {
    const page = await next;
    if (page.nextPageToken !== "") next = fetch(page.nextPageToken);
    let keys = page.keys;
    if (skipThrough !== null) {
      // The recorded key may be gone from the source by now: then the whole page is copied again.
      const at = keys.findIndex((ref) => sameKey(ref, skipThrough!));
      if (at >= 0) keys = keys.slice(at + 1);
      skipThrough = null;
    }
    for (const ref of keys) yield { ref, pageToken: token, seq: seq++ };
    if (page.nextPageToken === "") return;
    token = page.nextPageToken;
  }
}

async function copyPhase(
  options: MigrateOptions,
  start: Checkpoint,
  sourceKeys: number,
  concurrency: number,
): Promise<{ copied: number; copiedBytes: number; vanished: number; checkpoint: Checkpoint }> {
  const { source, target, checkpointPath, signal } = options;
  let checkpoint = start;
  let copied = 0;
  let copiedBytes = 0;
  let vanished = 0;
  // The watermark: every key before `confirmed` (in listing order) is on the target.
  let confirmed = 0;
  const finished = new Map<number, Listed>();
  let dirty = false;
  let savedAt = Date.now();
  const save = (): void => {
    if (!dirty) return;
    dirty = false;
    savedAt = Date.now();
    writeCheckpoint(checkpointPath, checkpoint);
  };
  const detail = (): string => `copied ${copied} (${formatBytes(copiedBytes)})${vanished > 0 ? `, vanished ${vanished}` : ""}`;
  const progress = new Progress({
    label: "migrate",
    unit: "keys",
    stream: options.progressStream,
    intervalMs: options.progressIntervalMs,
    onTick: save,
  });
  progress.set(start.copied, Math.max(sourceKeys, start.copied), detail());

  try {
    await forEachConcurrent(
      keysAfter(source, start, signal),
      concurrency,
      async (listed) => {
        const { ref } = listed;
        try {
          const stored = await source.readVersioned(ref, { signal });
          await target.write(ref, stored.value, { exact: true, version: stored.version, revision: stored.revision, signal });
          copied++;
          copiedBytes += stored.value.byteLength;
        } catch (error) {
          if (isNotFound(error)) vanished++;
          else if (signal?.aborted) throw new AbortedError("interrupted");
          else throw new MigrateError(`copying ${describeKey(ref)} failed: ${messageOf(error)}`);
        }
        finished.set(listed.seq, listed);
        let last: Listed | undefined;
        for (let next = finished.get(confirmed); next !== undefined; next = finished.get(confirmed)) {
          finished.delete(confirmed);
          confirmed++;
          last = next;
        }
        if (last !== undefined) {
          const { storeId, primaryNamespace, secondaryNamespace, key } = last.ref;
          const lastKey = { storeId, primaryNamespace, secondaryNamespace, key };
          checkpoint = { ...checkpoint, pageToken: last.pageToken, lastKey, copied: start.copied + confirmed };
          dirty = true;
        }
        const done = start.copied + copied + vanished;
        progress.set(done, Math.max(sourceKeys, done), detail());
        if (Date.now() - savedAt >= CHECKPOINT_INTERVAL_MS) save();
      },
      signal,
    );
  } catch (error) {
    save();
    if (error instanceof AbortedError) throw interrupted(checkpointPath, `copying (${start.copied + confirmed} keys copied)`);
    const what = error instanceof MigrateError ? messageOf(error) : `listing the source failed: ${messageOf(error)}`;
    throw new MigrateError(`${what}; rerun the same command to resume (checkpoint ${checkpointPath})`);
  } finally {
    progress.finish();
  }
  save();
  return { copied, copiedBytes, vanished, checkpoint };
}

/** Every key of `ns` on `store`, walking `listPage`. */
async function keysOf(store: KVStore, ns: NamespaceRef, signal: AbortSignal | undefined): Promise<Set<string>> {
  const keys = new Set<string>();
  let pageToken = "";
  do {
    const page = await store.listPage(ns, { pageToken, pageSize: DEFAULT_PAGE_SIZE, signal });
    for (const key of page.keys) keys.add(key);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return keys;
}

/** A key of the target that the source lacks; `otherStore`: the source holds no key of its store. */
export interface ExtraKey {
  readonly ref: KeyVersion;
  readonly otherStore: boolean;
}

/**
 * The target's keys the source lacks, in key order: those of the stores the source holds keys
 * in (each walked alone, so other stores are never read), and with `otherStores` those of every
 * other store as well. A shared target's other tenants are thus left alone unless asked.
 */
export async function* extraKeys(source: KVStore, target: KVStore, otherStores: boolean, signal?: AbortSignal): AsyncGenerator<ExtraKey> {
  const sourceStores = new Set((await countKeys(source, signal)).map((count) => count.storeId));
  const walks = otherStores ? [scanAllKeys(target, { allStores: true, signal })] : [...sourceStores].sort().map((storeId) => scanAllKeys(target, { storeId, signal }));
  let namespace: string | undefined;
  let present = new Set<string>();
  for (const walk of walks) {
    for await (const ref of walk) {
      if (!sourceStores.has(ref.storeId)) {
        yield { ref, otherStore: true };
        continue;
      }
      const id = `${ref.storeId}\0${ref.primaryNamespace}\0${ref.secondaryNamespace}`;
      if (id !== namespace) {
        namespace = id;
        present = await keysOf(source, ref, signal);
      }
      if (!present.has(ref.key)) yield { ref, otherStore: false };
    }
  }
}

/** Removes the target's keys the source lacks (after a copy with `overwrite`); returns how many. */
async function prunePhase(options: MigrateOptions, otherStores: boolean, concurrency: number): Promise<{ total: number; otherStores: number }> {
  const { source, target, signal } = options;
  const removed = { total: 0, otherStores: 0 };
  try {
    await forEachConcurrent(
      extraKeys(source, target, otherStores, signal),
      concurrency,
      async ({ ref, otherStore }) => {
        await target.remove(ref, { signal });
        removed.total++;
        if (otherStore) removed.otherStores++;
      },
      signal,
    );
  } catch (error) {
    if (error instanceof AbortedError) throw interrupted(options.checkpointPath, "removing the target's extra keys");
    throw new MigrateError(`removing the target's keys the source lacks failed: ${messageOf(error)}; rerun the same command to resume`);
  }
  return removed;
}
