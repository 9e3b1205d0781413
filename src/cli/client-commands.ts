//! `tierkv get|put|rm|ls`: one-shot client calls against a running server.

import { readFile } from "node:fs/promises";
import { TierkvClient } from "../client/client.js";
import { parseKeyPath, parseNamespacePath } from "../store/validate.js";

export interface ClientSettings {
  readonly server: string;
  readonly timeoutMs: number;
}

async function withClient<T>(settings: ClientSettings, run: (client: TierkvClient) => Promise<T>): Promise<T> {
  const client = new TierkvClient({ address: settings.server, timeoutMs: settings.timeoutMs });
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

async function readInput(file: string | undefined): Promise<Uint8Array> {
  if (file === undefined || file === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
  return readFile(file);
}

/** Writes the raw value to stdout. */
export async function get(settings: ClientSettings, path: string): Promise<void> {
  const ref = parseKeyPath(path);
  const value = await withClient(settings, (client) => client.read(ref));
  await new Promise<void>((resolve, reject) =>
    process.stdout.write(value, (error) => (error ? reject(error) : resolve())),
  );
}

/** Stores the contents of `file` (stdin when absent or `-`). */
export async function put(settings: ClientSettings, path: string, file: string | undefined): Promise<void> {
  const ref = parseKeyPath(path);
  const value = await readInput(file);
  await withClient(settings, (client) => client.write(ref, value));
}

export async function rm(settings: ClientSettings, path: string, lazy: boolean): Promise<void> {
  const ref = parseKeyPath(path);
  await withClient(settings, (client) => client.remove(ref, { lazy }));
}

/** Prints every key of the namespace, one per line, walking all pages. */
export async function ls(settings: ClientSettings, namespace: string, pageSize: number | undefined): Promise<void> {
  const ns = parseNamespacePath(namespace);
  await withClient(settings, async (client) => {
    for await (const key of client.keys(ns, { pageSize })) process.stdout.write(`${key}\n`);
  });
}
