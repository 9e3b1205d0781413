//! `tierkv get|put|rm|ls`: one-shot client calls against a running server.

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import * as grpc from "@grpc/grpc-js";
import { TierkvClient, type ClientOptions } from "../client/client.js";
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
