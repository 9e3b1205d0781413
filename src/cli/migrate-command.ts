//! `tierkv migrate --from URI --to URI`: the command line around `migrate` (src/migrate/migrate.ts).
//! Usage errors (bad or missing URIs, a non-empty target, a foreign checkpoint) exit 2 as
//! `SettingsError`s; failures exit 1; both as one line on stderr (src/cli/main.ts).

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command, Option } from "commander";
import { parsePositiveInteger, SettingsError } from "./settings.js";
import { StoreError } from "../store/errors.js";
import { redactStoreUri } from "../store/redact.js";
import { parseStoreUri } from "../store/store-uri.js";
import type { KVStore } from "../store/types.js";
import { openStore } from "../app/open-store.js";
import { checkpointMatches, CheckpointError, defaultCheckpointName, normalizeStoreUri, readCheckpoint } from "../migrate/checkpoint.js";
import {
  countKeys,
  DEFAULT_CONCURRENCY,
  describeKey,
  extraKeys,
  firstKey,
  formatBytes,
  migrate,
  MigrateError,
  MigrateUsageError,
  mismatchMessage,
  verifyStores,
  type VerifyReport,
} from "../migrate/migrate.js";
import { LOG_INTERVAL_MS } from "../migrate/progress.js";

/** Most writes in flight `--concurrency` accepts. */
const MAX_CONCURRENCY = 1024;

export interface MigrateCommandOptions {
  readonly from?: string;
  readonly to?: string;
  readonly checkpoint?: string;
  readonly overwrite?: boolean;
  readonly pruneOtherStores?: boolean;
  readonly dryRun?: boolean;
  readonly verifyOnly?: boolean;
  readonly concurrency?: string;
  readonly progressInterval?: string;
}

/** Gives the `tierkv migrate` command (named and described in src/cli/main.ts) its options and action. */
export function configureMigrateCommand(command: Command): void {
  command
    .option("--from <uri>", "the source store: sqlite:PATH, fs:DIR, grpc://HOST:PORT?token_file=FILE, …")
    .option("--to <uri>", "the target store (must be empty unless --overwrite or resuming)")
    .option("--checkpoint <file>", "the checkpoint file (default: tierkv-migrate-<hash of --from and --to>.migrate-checkpoint in the current directory)")
    .option("--overwrite", "copy into a non-empty target; keys of the source's stores that the source lacks are removed, other stores are left alone", false)
    .option("--prune-other-stores", "with --overwrite: also empty the target's stores the source has no keys in", false)
    .option("--dry-run", "print what would be written and removed (keys per store) and change nothing", false)
    .option("--verify-only", "compare source and target (key counts and SHA-256 per namespace of the source's stores) without copying", false)
    .option("--concurrency <n>", "writes in flight", String(DEFAULT_CONCURRENCY))
    .addOption(new Option("--progress-interval <ms>", "ms between progress lines when stderr is not a terminal").hideHelp())
    // Commander's own parse errors (unknown options) are usage errors too: exit 2, not 1.
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
    .action((options: MigrateCommandOptions) => runMigrate(options));
}

/** Opens a store URI; a URI `openStore` refuses is a usage error. */
async function open(uri: string, flag: string): Promise<KVStore> {
  try {
    return await openStore(uri);
  } catch (error) {
    if (error instanceof StoreError && error.code === "invalid-argument") throw new SettingsError(`${flag}: ${error.message}`);
    throw new MigrateError(`${flag} ${normalizeStoreUri(uri)}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Whether a sqlite:/fs: URI names something that exists (other schemes: always). */
function exists(uri: string): boolean {
  const parsed = parseStoreUri(uri);
  if (parsed.kind !== "sqlite" && parsed.kind !== "fs") return true;
  return existsSync(resolve(parsed.path));
}

function checkUri(uri: string | undefined, flag: string): string {
  if (uri === undefined || uri === "") throw new SettingsError(`migrate needs ${flag} URI (see tierkv migrate --help)`);
  if (parseStoreUri(uri).kind === "memory") {
    throw new SettingsError(`${flag}: a memory: store exists only inside one process; migrate between sqlite:, fs:, postgres:// or grpc:// stores`);
  }
  return uri;
}

function storeOrStores(n: number): string {
  return `${n} ${n === 1 ? "store" : "stores"}`;
}

/** `verified 900 keys in 3 stores, 9 namespaces: counts and SHA-256 of values, versions and revisions match` */
function verifiedLine(report: VerifyReport): string {
  const { keys, bytes, namespaces } = report.source;
  const stores = new Set([...namespaces.values()].map((ns) => ns.storeId)).size;
  const versions = report.versionsCompared ? "values, versions and revisions" : "values (versions not compared)";
  return `verified ${keys} keys (${formatBytes(bytes)}) in ${storeOrStores(stores)}, ${namespaces.size} namespaces: counts and SHA-256 of ${versions} match`;
}

export interface MigrateHooks {
  /** Opens the source instead of `openStore(--from)` (a snapshot file, read-only); `from` still names it. */
  readonly openSource?: () => Promise<KVStore>;
}

export async function runMigrate(options: MigrateCommandOptions, hooks: MigrateHooks = {}): Promise<void> {
  const from = checkUri(options.from, "--from");
  const to = checkUri(options.to, "--to");
  if (normalizeStoreUri(from) === normalizeStoreUri(to)) throw new SettingsError("--from and --to name the same store");
  if (options.dryRun && options.verifyOnly) throw new SettingsError("--dry-run and --verify-only exclude each other");
  if (options.pruneOtherStores && !options.overwrite) throw new SettingsError("--prune-other-stores needs --overwrite");
  const concurrency = parsePositiveInteger(options.concurrency ?? String(DEFAULT_CONCURRENCY), "--concurrency");
  if (concurrency > MAX_CONCURRENCY) throw new SettingsError(`--concurrency: at most ${MAX_CONCURRENCY}`);
  const progressIntervalMs =
    options.progressInterval === undefined ? LOG_INTERVAL_MS : parsePositiveInteger(options.progressInterval, "--progress-interval");
  if (!exists(from)) throw new SettingsError(`--from ${normalizeStoreUri(from)}: no such file or directory`);
  const checkpointPath = resolve(options.checkpoint ?? join(process.cwd(), defaultCheckpointName(from, to)));

  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const opened: KVStore[] = [];
  try {
    const source = await (hooks.openSource?.() ?? open(from, "--from"));
    opened.push(source);
    if (options.dryRun) {
      // A local target that does not exist yet stays that way: it is not opened (which creates it).
      const target = exists(to) ? await open(to, "--to") : undefined;
      if (target !== undefined) opened.push(target);
      await dryRun(source, target, from, to, checkpointPath, options.overwrite === true, options.pruneOtherStores === true);
      return;
    }
    if (options.verifyOnly && !exists(to)) throw new SettingsError(`--to ${normalizeStoreUri(to)}: no such file or directory`);
    const target = await open(to, "--to");
    opened.push(target);
    if (options.verifyOnly) {
      // As after a migration: the target's stores the source lacks are another tenant's business.
      const storeIds = (await countKeys(source, controller.signal)).map((count) => count.storeId);
      const report = await verifyStores({ source, target, from, to, concurrency, signal: controller.signal, progressIntervalMs, storeIds });
      if (report.mismatches.length > 0) throw new MigrateError(mismatchMessage(report.mismatches));
      process.stdout.write(`${verifiedLine(report)}\n`);
      return;
    }
    const report = await migrate({
      source,
      target,
      from,
      to,
      checkpointPath,
      overwrite: options.overwrite === true,
      pruneOtherStores: options.pruneOtherStores === true,
      concurrency,
      signal: controller.signal,
      progressIntervalMs,
      note: (line) => process.stderr.write(`migrate: ${line}\n`),
    });
    const parts = [
      `migrate done: copied ${report.copied} keys (${formatBytes(report.copiedBytes)})${report.resumed ? " in this run (resumed)" : ""}`,
      ...(report.vanished > 0 ? [`${report.vanished} vanished from the source`] : []),
      ...(report.removed > 0 ? [`removed ${report.removed} keys the source lacks${otherStoresPart(report.removedFromOtherStores)}`] : []),
      verifiedLine(report.verification),
    ];
    process.stdout.write(`${parts.join("; ")}\n`);
  } catch (error) {
    if (error instanceof MigrateUsageError || error instanceof CheckpointError) throw new SettingsError(error.message);
    throw error;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await Promise.allSettled(opened.map((store) => store.close()));
  }
}

function otherStoresPart(removed: number): string {
  return removed > 0 ? ` (${removed} of them in stores the source lacks)` : "";
}

/**
 * Prints, per store, the keys the migration would write and remove; with `overwrite`, the
 * target's stores the source lacks too (emptied with `pruneOtherStores`, left alone without).
 */
async function dryRun(
  source: KVStore,
  target: KVStore | undefined,
  from: string,
  to: string,
  checkpointPath: string,
  overwrite: boolean,
  pruneOtherStores: boolean,
): Promise<void> {
  const out: string[] = [`dry run (nothing is changed): migrate ${normalizeStoreUri(from)} → ${normalizeStoreUri(to)}`];
  const checkpoint = readCheckpoint(checkpointPath);
  const foreign = checkpoint !== undefined && !checkpointMatches(checkpoint, from, to);
  // A resumed migration prunes as its first run was told to.
  const prunes = checkpoint !== undefined && !foreign ? checkpoint.overwrite : overwrite;
  const prunesOthers = checkpoint !== undefined && !foreign ? checkpoint.pruneOtherStores : pruneOtherStores;
  const counts = await countKeys(source);
  const removals = new Map<string, number>();
  if (target !== undefined && prunes) {
    for await (const { ref } of extraKeys(source, target, prunesOthers)) removals.set(ref.storeId, (removals.get(ref.storeId) ?? 0) + 1);
  }
  let keys = 0;
  for (const count of counts) {
    keys += count.keys;
    out.push(`  store ${count.storeId}: would write ${count.keys} keys in ${count.namespaces} namespaces, remove ${removals.get(count.storeId) ?? 0}`);
  }
  if (target !== undefined && prunes) {
    const copied = new Set(counts.map((count) => count.storeId));
    for (const other of (await countKeys(target)).filter((count) => !copied.has(count.storeId))) {
      out.push(
        prunesOthers
          ? `  store ${other.storeId} (not in the source): would remove all ${other.keys} keys (--prune-other-stores)`
          : `  store ${other.storeId} (not in the source): ${other.keys} keys, left alone (--prune-other-stores would empty it)`,
      );
    }
  }
  const removed = [...removals.values()].reduce((sum, n) => sum + n, 0);
  out.push(`would copy ${keys} keys in ${storeOrStores(counts.length)}${removed > 0 ? ` and remove ${removed} keys from the target` : ""}, then verify`);
  if (foreign) {
    out.push(`refused: checkpoint ${checkpointPath} belongs to a migration from ${redactStoreUri(checkpoint.from)} to ${redactStoreUri(checkpoint.to)}`);
  } else if (checkpoint !== undefined) {
    const after = checkpoint.lastKey === null ? "from the start" : `after ${describeKey(checkpoint.lastKey)}`;
    out.push(`target: would resume (${checkpoint.phase}) from checkpoint ${checkpointPath}, ${after}`);
  } else {
    const first = target === undefined ? undefined : await firstKey(target);
    if (first === undefined) out.push(`target: empty${target === undefined ? " (does not exist yet)" : ""}`);
    else if (overwrite) out.push(`target: not empty (${describeKey(first)}); --overwrite copies over it and removes the keys listed above`);
    else out.push(`target: not empty (${describeKey(first)}); refused without --overwrite`);
  }
  process.stdout.write(`${out.join("\n")}\n`);
}
