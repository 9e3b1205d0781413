//! `tierkv resync`, `backup-status`, `store-usage` and `snapshot save|status|restore`: operator
//! commands against a running server (and, for `snapshot status|restore`, a snapshot file).

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { TierkvAdminClient } from "../client/admin-client.js";
import type { ResyncResponse, SnapshotSummary } from "../../gen/tierkv/v1/admin_pb.js";
import { runMigrate } from "./migrate-command.js";
import { formatBytes } from "../migrate/migrate.js";
import { StoreError } from "../store/errors.js";
import { snapshotStatus as readSnapshotStatus } from "../store/snapshot.js";
import { SqliteStore } from "../store/sqlite.js";
import { clientOptionsOf, type ClientSettings } from "./client-commands.js";
import { SettingsError } from "./settings.js";

/** Seconds between progress lines when stderr is not a terminal. */
const LOG_INTERVAL_MS = 2_000;
const BAR_WIDTH = 30;

function counts(progress: ResyncResponse): string {
  return `scanned ${progress.scanned}, copied ${progress.copied}, removed ${progress.removed}, unchanged ${progress.unchanged}`;
}

/** A one-line bar, redrawn in place: `[#######.......]  45%  2250/5000 primary keys · copied …`. */
function bar(progress: ResyncResponse): string {
  const total = Number(progress.primaryKeys);
  const done = Number(progress.primaryScanned);
  const fraction = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(fraction * BAR_WIDTH);
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}] ${percent} ${done}/${total} primary keys · ${counts(progress)}`;
}

/** Runs a resync on the server, showing progress on stderr; prints the final counts on stdout. */
export async function resync(settings: ClientSettings): Promise<void> {
  const client = new TierkvAdminClient(clientOptionsOf(settings));
  const terminal = process.stderr.isTTY === true;
  let lastLog = Date.now();
  try {
    for await (const progress of client.resync()) {
      if (progress.done) {
        if (terminal) process.stderr.write(`\r${bar(progress)}\n`);
        process.stdout.write(`resync done: ${counts(progress)}\n`);
      } else if (terminal) {
        process.stderr.write(`\r${bar(progress)}`);
      } else if (Date.now() - lastLog >= LOG_INTERVAL_MS) {
        lastLog = Date.now();
        process.stderr.write(`resync: ${progress.primaryScanned}/${progress.primaryKeys} primary keys, ${counts(progress)}\n`);
      }
    }
  } finally {
    client.close();
  }
}

/** Prints the server's backup status as JSON. */
export async function backupStatus(settings: ClientSettings): Promise<void> {
  const client = new TierkvAdminClient(clientOptionsOf(settings));
  try {
    const status = await client.backupStatus();
    const json = {
      configured: status.configured,
      policy: status.policy,
      owedKeys: Number(status.owedKeys),
      divergences: Number(status.divergences),
      state: status.state,
      transitions: Number(status.transitions),
      downMs: Number(status.downMs),
      timeLimitMs: Number(status.timeLimitMs),
      lastStopClean: status.lastStopClean,
      healing: status.healing,
      heals: Number(status.heals),
      ...(status.follower !== undefined && {
        follower: {
          leader: status.follower.leader,
          state: status.follower.state,
          connected: status.follower.connected,
          lagChanges: Number(status.follower.lagChanges),
          lagSeconds: status.follower.lagSeconds,
          appliedChanges: Number(status.follower.appliedChanges),
          fullCopies: Number(status.follower.fullCopies),
          lastError: status.follower.lastError,
        },
      }),
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
  } finally {
    client.close();
  }
}

/** Prints one store's usage (keys, value bytes) as JSON. */
export async function storeUsage(settings: ClientSettings, storeId: string, recount = false): Promise<void> {
  const client = new TierkvAdminClient(clientOptionsOf(settings));
  try {
    const usage = await client.storeUsage(storeId, recount);
    const drift = recount ? { drift: { keys: Number(usage.driftKeys), bytes: Number(usage.driftBytes) } } : {};
    process.stdout.write(`${JSON.stringify({ store: usage.storeId, keys: Number(usage.keys), bytes: Number(usage.bytes), ...drift })}\n`);
  } finally {
    client.close();
  }
}

function storeCount(n: number): string {
  return `${n} ${n === 1 ? "store" : "stores"}`;
}

/**
 * Saves a snapshot of the server's primary to `file`: received into `FILE.<pid>.tmp` (0600: it
 * holds every tenant's data), checked against the server's SHA-256, synced, then renamed over
 * `file`, so `file` is either the old one or a complete snapshot. Progress on a terminal only.
 */
export async function snapshotSave(settings: ClientSettings, file: string): Promise<void> {
  const path = resolve(file);
  const aside = `${path}.${process.pid}.tmp`;
  const terminal = process.stderr.isTTY === true;
  const client = new TierkvAdminClient(clientOptionsOf(settings));
  try {
    const handle = await open(aside, "w", 0o600);
    try {
      const { received, sha256, summary } = await receiveSnapshot(client, handle, terminal);
      await handle.sync();
      await handle.close();
      await rename(aside, path);
      // The rename itself is durable once the directory is synced.
      const dir = await open(dirname(path), "r");
      await dir.sync().finally(() => dir.close());
      const keys = summary.stores.reduce((sum, store) => sum + Number(store.keys), 0);
      process.stdout.write(`snapshot saved to ${file}: ${keys} keys in ${storeCount(summary.stores.length)}, ${formatBytes(received)}; SHA-256 ${sha256}\n`);
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(aside, { force: true });
      throw error;
    }
  } finally {
    client.close();
  }
}

/** Writes the streamed file to `handle`; checks it against the summary (size and SHA-256). */
async function receiveSnapshot(
  client: TierkvAdminClient,
  handle: FileHandle,
  terminal: boolean,
): Promise<{ received: number; sha256: string; summary: SnapshotSummary }> {
  const hash = createHash("sha256");
  let received = 0;
  let summary: SnapshotSummary | undefined;
  for await (const message of client.snapshot()) {
    if (message.part.case === "chunk") {
      await handle.write(message.part.value);
      hash.update(message.part.value);
      received += message.part.value.byteLength;
      if (terminal) process.stderr.write(`\rsnapshot: received ${formatBytes(received)}\x1b[K`);
    } else if (message.part.case === "summary") {
      summary = message.part.value;
    }
  }
  if (terminal) process.stderr.write("\n");
  if (summary === undefined) throw new Error("the server ended the snapshot without its summary; nothing saved");
  const sha256 = hash.digest("hex");
  if (sha256 !== summary.sha256 || received !== Number(summary.fileBytes)) {
    throw new Error(`the snapshot arrived damaged (${received} bytes, SHA-256 ${sha256}; the server sent ${summary.fileBytes}, ${summary.sha256}); nothing saved`);
  }
  return { received, sha256, summary };
}

/** A snapshot file's problem is the operator's to fix: exit 2, naming the file. */
function snapshotFileError(file: string, error: unknown): unknown {
  return error instanceof StoreError && error.code === "invalid-argument" ? new SettingsError(`${file}: ${error.message}`) : error;
}

/** Prints a snapshot file's size and SHA-256, then per store its keys, value bytes and digest (contract §2.12). */
export async function snapshotStatus(file: string): Promise<void> {
  if (!existsSync(file)) throw new SettingsError(`${file}: no such file`);
  const status = await readSnapshotStatus(file).catch((error: unknown) => {
    throw snapshotFileError(file, error);
  });
  const keys = status.stores.reduce((sum, store) => sum + store.keys, 0);
  const lines = [`${file}: ${keys} keys in ${storeCount(status.stores.length)}, ${formatBytes(status.fileBytes)}; SHA-256 ${status.sha256}`];
  for (const store of status.stores) lines.push(`  store ${store.storeId}: ${store.keys} keys, ${formatBytes(store.bytes)}; digest ${store.digest}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

export interface SnapshotRestoreOptions {
  readonly to?: string;
  readonly overwrite?: boolean;
  readonly pruneOtherStores?: boolean;
  readonly checkpoint?: string;
}

/**
 * Loads a snapshot file into the store `--to` names, with `tierkv migrate` (copy, checkpoint,
 * verification); the file is opened read-only and never changed.
 */
export async function snapshotRestore(file: string, options: SnapshotRestoreOptions): Promise<void> {
  const path = resolve(file);
  if (!existsSync(path)) throw new SettingsError(`${file}: no such file`);
  const openSource = async (): Promise<SqliteStore> => {
    try {
      return new SqliteStore(path, { readOnly: true });
    } catch (error) {
      throw snapshotFileError(file, error);
    }
  };
  await runMigrate({ ...options, from: `sqlite:${path}` }, { openSource });
}
