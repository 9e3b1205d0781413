//! What the follower tests share: `tierkv serve` processes on fixed ports (a follower's --follow
//! URI names its leader's port, which must survive the leader's restart), the full contents of an
//! instance (every store, key, value, version and revision, and a digest per store), and bounded
//! polling.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { expect } from "vitest";
import { TierkvAdminClient } from "../../src/client/admin-client.js";
import { TierkvClient, type ClientOptions } from "../../src/client/client.js";
import type { BackupStatusResponse } from "../../gen/tierkv/v1/admin_pb.js";
import { scanAllKeys } from "../../src/store/scan.js";
import { formatPath } from "../../src/store/validate.js";
import { freePort } from "../support/postgres-server.js";
import { spawnServer, type ServerProcess } from "../support/process.js";

/** One `tierkv serve` on a fixed port, started, stopped and started again on the same files. */
export class Instance {
  private process: ServerProcess | undefined;
  private clients: TierkvClient[] = [];
  private readonly pastLogs: string[] = [];

  private constructor(
    readonly address: string,
    private readonly args: readonly string[],
    private readonly token: string | undefined,
    private readonly credentials: grpc.ChannelCredentials | undefined,
  ) {}

  /**
   * An instance that will listen on a free port of 127.0.0.1; `token` is the test's own credential.
   * With `ca` (a PEM file), the test's clients connect with TLS trusting it: for an instance whose
   * `args` serve TLS (`--tls-cert`, `--tls-key`).
   */
  static async create(args: readonly string[], token?: string, ca?: string): Promise<Instance> {
    const credentials = ca === undefined ? undefined : grpc.credentials.createSsl(readFileSync(ca));
    return new Instance(`127.0.0.1:${await freePort()}`, args, token, credentials);
  }

  /** How the test's clients reach it: its address, token and (with TLS) credentials. */
  get clientOptions(): ClientOptions {
    return {
      address: this.address,
      ...(this.token !== undefined && { bearerToken: this.token }),
      ...(this.credentials !== undefined && { credentials: this.credentials }),
    };
  }

  /** Every log line of every run, in order. */
  get logs(): string[] {
    return [...this.pastLogs, ...(this.process?.logs ?? [])];
  }

  get running(): ServerProcess {
    if (this.process === undefined) throw new Error(`${this.address} is not running`);
    return this.process;
  }

  async start(): Promise<void> {
    if (this.process !== undefined) throw new Error(`${this.address} is already running`);
    let lastError: unknown;
    // A port a killed process just released is normally free at once; try a few times anyway.
    for (let attempt = 0; attempt < 5 && this.process === undefined; attempt++) {
      try {
        this.process = await spawnServer([...this.args, "--listen", this.address]);
      } catch (error) {
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    }
    if (this.process === undefined) throw new Error(`${this.address} did not start: ${String(lastError)}`);
  }

  /** SIGKILL (a crash) or SIGTERM (a clean stop); resolves once the process has exited. */
  async stop(signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    const running = this.running;
    this.process = undefined;
    await Promise.all(this.clients.splice(0).map((client) => client.close()));
    const exit = await running.kill(signal);
    this.pastLogs.push(...running.logs);
    if (signal === "SIGTERM") expect(exit).toEqual({ code: 0, signal: null });
  }

  /** A client of the running process (closed when it stops). */
  client(): TierkvClient {
    const client = new TierkvClient({ ...this.clientOptions, timeoutMs: 20_000 });
    this.clients.push(client);
    return client;
  }

  async backupStatus(): Promise<BackupStatusResponse> {
    const admin = new TierkvAdminClient(this.clientOptions);
    try {
      return await admin.backupStatus();
    } finally {
      admin.close();
    }
  }

  async close(): Promise<void> {
    if (this.process !== undefined) await this.stop("SIGKILL");
  }
}

/** A key's full state as one line: value (hex), version, revision. */
export type Contents = Map<string, Map<string, string>>;

/** Every store's keys with value, version and revision, read through the server (`listAllKeys` with all_stores, then a read per key). */
export async function contentsOf(kv: TierkvClient): Promise<Contents> {
  const contents: Contents = new Map();
  for await (const key of scanAllKeys(kv, { allStores: true })) {
    let stored;
    try {
      stored = await kv.readVersioned(key);
    } catch (error) {
      // Removed between the listing and the read: the next comparison sees it gone.
      if ((error as { code?: string }).code === "not-found") continue;
      throw error;
    }
    expect([stored.version, stored.revision], `${key.storeId}/${formatPath(key)}`).toEqual([key.version, key.revision]);
    let store = contents.get(key.storeId);
    if (store === undefined) contents.set(key.storeId, (store = new Map()));
    store.set(formatPath(key), `${Buffer.from(stored.value).toString("hex")} v${stored.version} r${stored.revision}`);
  }
  return contents;
}

/** Each store's SHA-256 over its keys in order, each with its value, version and revision. */
export function digests(contents: Contents): Map<string, string> {
  return new Map(
    [...contents].map(([storeId, keys]) => {
      const hash = createHash("sha256");
      for (const path of [...keys.keys()].sort()) hash.update(`${path}\0${keys.get(path)!}\n`);
      return [storeId, hash.digest("hex")];
    }),
  );
}

/** Polls `condition` until it holds, at most `ms`; fails the test with `what` otherwise. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Waits (bounded) until the follower's key listing equals the leader's, then compares everything:
 * keys, values, versions, revisions and a digest per store. Returns the leader's contents.
 */
export async function expectSameContents(leader: TierkvClient, follower: TierkvClient, ms = 60_000): Promise<Contents> {
  const listing = async (kv: TierkvClient): Promise<string> => {
    const lines: string[] = [];
    for await (const key of scanAllKeys(kv, { allStores: true })) lines.push(`${key.storeId}/${formatPath(key)} v${key.version} r${key.revision}`);
    return lines.join("\n");
  };
  let last = "";
  await waitFor(
    "the follower's keys to equal the leader's",
    async () => {
      const [theirs, ours] = await Promise.all([listing(leader), listing(follower)]);
      last = `leader has ${theirs.split("\n").length} keys, follower ${ours.split("\n").length}`;
      return theirs === ours;
    },
    ms,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message} (${last})`);
  });
  const [theirs, ours] = await Promise.all([contentsOf(leader), contentsOf(follower)]);
  expect(ours).toEqual(theirs);
  expect(digests(ours)).toEqual(digests(theirs));
  return theirs;
}

/** Every store's latest sequence on `kv`'s server: the first message of an all_stores watch from now. */
export async function headsOf(kv: TierkvClient): Promise<Map<string, bigint>> {
  const abort = new AbortController();
  try {
    for await (const event of kv.watch({ allStores: true }, abort.signal)) {
      if (event.kind === "progress") return new Map(event.heads ?? []);
    }
  } finally {
    abort.abort();
  }
  throw new Error("the watch ended before its first message");
}
