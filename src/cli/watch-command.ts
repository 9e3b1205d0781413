//! `tierkv watch [PRIMARY[/SECONDARY]]`: one JSON line per change of a store (contract §9) until
//! interrupted; `--from SEQ` starts inside the kept history, `--values` adds each value in base64.

import { TierkvClient } from "../client/client.js";
import { formatPath, parseNamespacePath } from "../store/validate.js";
import type { Change } from "../store/types.js";
import { clientOptionsOf, type ClientSettings } from "./client-commands.js";
import { SettingsError } from "./settings.js";

export interface WatchCommandOptions {
  readonly from?: string;
  readonly values?: boolean;
  readonly store?: string;
}

/** A change as the command prints it. */
export function changeLine(change: Change, values: boolean): string {
  return JSON.stringify({
    // A number, as the format shows: sequences stay far below 2^53.
    seq: Number(change.seq),
    type: change.kind,
    path: formatPath(change),
    version: String(change.version),
    revision: String(change.revision),
    size: change.size,
    ...(values && change.value !== undefined && { value: Buffer.from(change.value).toString("base64") }),
    ...(change.superseded === true && { superseded: true }),
  });
}

export async function watch(settings: ClientSettings, namespace: string | undefined, options: WatchCommandOptions): Promise<void> {
  let prefix = { primaryNamespace: "", secondaryNamespace: "" };
  if (namespace !== undefined) {
    try {
      prefix = parseNamespacePath(namespace);
    } catch (error) {
      throw new SettingsError((error as Error).message);
    }
  }
  if (options.from !== undefined && !/^\d+$/.test(options.from)) throw new SettingsError(`--from ${options.from}: expected a sequence number`);
  const values = options.values ?? false;
  const client = new TierkvClient(clientOptionsOf(settings));
  const stop = new AbortController();
  const interrupt = (): void => stop.abort();
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    const events = client.watch(
      { ...prefix, ...(options.store !== undefined && { storeId: options.store }), start: BigInt(options.from ?? 0), values },
      stop.signal,
    );
    for await (const event of events) {
      if (event.kind === "change") process.stdout.write(`${changeLine(event.change, values)}\n`);
    }
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
    await client.close();
  }
}
