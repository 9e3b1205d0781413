//! The checkpoint of a migration: which source and target it joins, and the position in the
//! source's `listAllKeys` order up to which every key is copied, so a rerun resumes there.
//! It holds no secret (the URIs are normalized, which drops passwords and tokens) and is private
//! to its owner (0600) all the same: it names the stores.

import { createHash } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { redactStoreUri, splitUriAuthority } from "../store/redact.js";
import { parseStoreUri } from "../store/store-uri.js";
import type { KeyRef } from "../store/types.js";

const FORMAT = 1;

/** The phases of a migration, in order; a checkpoint records the one to resume in. */
export type MigratePhase = "copy" | "prune" | "verify";

export interface Checkpoint {
  readonly format: number;
  /** Normalized store URIs (see `normalizeStoreUri`): no password, no token. */
  readonly from: string;
  readonly to: string;
  /** The first run had `--overwrite`: keys the source lacks are removed from the target's stores the source has. */
  readonly overwrite: boolean;
  /** The first run had `--prune-other-stores`: the target's stores the source lacks are emptied too. */
  readonly pruneOtherStores: boolean;
  readonly phase: MigratePhase;
  /**
   * The source `listAllKeys` token of the page holding `lastKey` ("" for the first page); every
   * key up to and including `lastKey` is on the target.
   */
  readonly pageToken: string;
  readonly lastKey: (KeyRef & { readonly storeId: string }) | null;
  /** Keys copied so far, over every run. */
  readonly copied: number;
  readonly startedAt: string;
}

/**
 * A store URI reduced to what names the data, which is also what may be shown and stored: local
 * paths made absolute; the query of a `grpc(s)://` URI (token file, TLS files, timeouts) and of a
 * `postgres://` URI (TLS, pool settings) left out, and a PostgreSQL password too, so a rerun from
 * another directory or with a renewed token or password still matches its checkpoint.
 */
export function normalizeStoreUri(uri: string): string {
  const parsed = parseStoreUri(uri);
  if ((parsed.kind === "sqlite" || parsed.kind === "fs") && parsed.path !== "") return `${parsed.kind}:${resolve(parsed.path)}`;
  if (parsed.kind === "remote") {
    try {
      const url = new URL(uri);
      return `${parsed.scheme}://${url.host}`;
    } catch {
      return redactStoreUri(uri);
    }
  }
  const parts = splitUriAuthority(uri);
  if (parts === undefined) return uri;
  return `${parts.prefix}${parts.user === undefined ? "" : `${parts.user}@`}${parts.rest.replace(/[?#].*$/s, "")}`;
}

/**
 * `tierkv-migrate-<hash>.migrate-checkpoint`, the hash (SHA-256, 16 hex digits) of the normalized
 * (from, to) pair: one file per migration, and a file name that shows no URI.
 */
export function defaultCheckpointName(from: string, to: string): string {
  const pair = createHash("sha256").update(JSON.stringify([normalizeStoreUri(from), normalizeStoreUri(to)])).digest("hex");
  return `tierkv-migrate-${pair.slice(0, 16)}.migrate-checkpoint`;
}

export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

/** The checkpoint at `path`, or undefined when there is none; throws CheckpointError when unreadable. */
export function readCheckpoint(path: string): Checkpoint | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return undefined;
    throw new CheckpointError(`checkpoint ${path} cannot be read: ${(error as Error).message}`);
  }
  let parsed: Partial<Checkpoint> | undefined;
  try {
    parsed = JSON.parse(text) as Partial<Checkpoint>;
  } catch {
    parsed = undefined;
  }
  if (
    parsed?.format !== FORMAT ||
    typeof parsed.from !== "string" ||
    typeof parsed.to !== "string" ||
    typeof parsed.pageToken !== "string" ||
    typeof parsed.copied !== "number" ||
    !["copy", "prune", "verify"].includes(parsed.phase as string)
  ) {
    throw new CheckpointError(`checkpoint ${path} is not a tierkv migrate checkpoint; remove it (and rerun with --overwrite)`);
  }
  return {
    format: FORMAT,
    from: parsed.from,
    to: parsed.to,
    overwrite: parsed.overwrite === true,
    pruneOtherStores: parsed.pruneOtherStores === true,
    phase: parsed.phase!,
    pageToken: parsed.pageToken,
    lastKey: parsed.lastKey ?? null,
    copied: parsed.copied,
    startedAt: typeof parsed.startedAt === "string" ? parsed.startedAt : new Date().toISOString(),
  };
}

export function newCheckpoint(from: string, to: string, overwrite: boolean, pruneOtherStores: boolean): Checkpoint {
  return {
    format: FORMAT,
    from: normalizeStoreUri(from),
    to: normalizeStoreUri(to),
    overwrite,
    pruneOtherStores,
    phase: "copy",
    pageToken: "",
    lastKey: null,
    copied: 0,
    startedAt: new Date().toISOString(),
  };
}

/** Whether `checkpoint` belongs to a migration from `from` to `to`. */
export function checkpointMatches(checkpoint: Checkpoint, from: string, to: string): boolean {
  return checkpoint.from === normalizeStoreUri(from) && checkpoint.to === normalizeStoreUri(to);
}

/**
 * Replaces the file atomically (write aside, rename over), so a kill never leaves half a
 * checkpoint; created 0600 (the aside file is removed first: a leftover would keep its mode).
 */
export function writeCheckpoint(path: string, checkpoint: Checkpoint): void {
  const aside = `${path}.${process.pid}.tmp`;
  rmSync(aside, { force: true });
  writeFileSync(aside, `${JSON.stringify(checkpoint)}\n`, { mode: 0o600 });
  renameSync(aside, path);
}

export function removeCheckpoint(path: string): void {
  rmSync(path, { force: true });
}
