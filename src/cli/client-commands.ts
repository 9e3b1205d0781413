//! `tierkv get|put|rm|ls`: one-shot client calls against a running server (`--store` names another
//! store, for the roles that may).

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import * as grpc from "@grpc/grpc-js";
import { TierkvClient, type ClientOptions } from "../client/client.js";
import type { KeyRef } from "../store/types.js";
import { parseKeyPath, parseNamespacePath } from "../store/validate.js";
import { SettingsError } from "./settings.js";

export interface ClientSettings {
  readonly server: string;
  readonly timeoutMs: number;
  /** The bearer token (from TIERKV_TOKEN or the first line of --token-file). */
  readonly token?: string;
  /** TLS: the server's CA, and a client certificate and key for mutual TLS. */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

function readSettingFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new SettingsError(`${flag} ${path}: ${(error as Error).message}`);
  }
}

/** The client options of the CLI's settings: TLS when --ca, --cert or --key is given. */
export function clientOptionsOf(settings: ClientSettings): ClientOptions {
  const { ca, cert, key } = settings;
  if ((cert === undefined) !== (key === undefined)) throw new SettingsError("--cert and --key go together");
  const tls = ca !== undefined || cert !== undefined;
  return {
    address: settings.server,
    timeoutMs: settings.timeoutMs,
    ...(settings.token !== undefined && { bearerToken: settings.token }),
    ...(tls && {
      credentials: grpc.credentials.createSsl(
        ca === undefined ? null : readSettingFile("--ca", ca),
        key === undefined ? null : readSettingFile("--key", key),
        cert === undefined ? null : readSettingFile("--cert", cert),
      ),
    }),
  };
}

async function withClient<T>(settings: ClientSettings, run: (client: TierkvClient) => Promise<T>): Promise<T> {
  const client = new TierkvClient(clientOptionsOf(settings));
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

/** A path on the command line is a usage error (exit 2) when malformed, not a failed call. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new SettingsError((error as Error).message);
  }
}

/** The key a command names, in another store when `--store` says so. */
function keyOf(path: string, store: string | undefined): KeyRef {
  return { ...usage(() => parseKeyPath(path)), ...(store !== undefined && { storeId: store }) };
}

/** Writes the raw value to stdout. */
export async function get(settings: ClientSettings, path: string, store?: string): Promise<void> {
  const ref = keyOf(path, store);
  const value = await withClient(settings, (client) => client.read(ref));
  await new Promise<void>((resolve, reject) =>
    process.stdout.write(value, (error) => (error ? reject(error) : resolve())),
  );
}

/** Stores the contents of `file` (stdin when absent or `-`). */
export async function put(settings: ClientSettings, path: string, file: string | undefined, store?: string): Promise<void> {
  const ref = keyOf(path, store);
  const value = await readInput(file);
  await withClient(settings, (client) => client.write(ref, value));
}

export async function rm(settings: ClientSettings, path: string, lazy: boolean, store?: string): Promise<void> {
  const ref = keyOf(path, store);
  await withClient(settings, (client) => client.remove(ref, { lazy }));
}

export interface ListOptions {
  readonly pageSize?: number;
  readonly store?: string;
}

/** Prints every key of the namespace, one per line, walking all pages. */
export async function ls(settings: ClientSettings, namespace: string, options: ListOptions = {}): Promise<void> {
  const ns = { ...usage(() => parseNamespacePath(namespace)), ...(options.store !== undefined && { storeId: options.store }) };
  await withClient(settings, async (client) => {
    for await (const key of client.keys(ns, { pageSize: options.pageSize })) process.stdout.write(`${key}\n`);
  });
}

/** Prints the store's primary namespaces (or the secondary ones under `primary`), one per line. */
export async function lsNamespaces(settings: ClientSettings, primary: string | undefined, options: ListOptions = {}): Promise<void> {
  if (primary !== undefined) {
    const ns = usage(() => parseNamespacePath(primary));
    if (ns.secondaryNamespace !== "") throw new SettingsError(`ls --namespaces ${primary}: name a primary namespace only (no "/")`);
  }
  await withClient(settings, async (client) => {
    const names = client.namespaces({ primary, storeId: options.store, pageSize: options.pageSize });
    for await (const name of names) process.stdout.write(`${name}\n`);
  });
}
