//! `tierkv resync` and `tierkv backup-status`: operator commands against a running server.

import { TierkvAdminClient } from "../client/admin-client.js";
import type { ResyncResponse } from "../../gen/tierkv/v1/admin_pb.js";
import { clientOptionsOf, type ClientSettings } from "./client-commands.js";

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
