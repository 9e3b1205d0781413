//! Data and helpers shared by the migrate tests: a source with three stores, several namespaces
//! (the root among them), values from empty to 1 MiB, versions and revisions; snapshots of a store;
//! the real CLI spawned in a chosen directory.

import { spawn, type ChildProcess } from "node:child_process";
import { expect } from "vitest";
import { scanAllKeys } from "../../src/store/scan.js";
import type { KVStore, KeyRef } from "../../src/store/types.js";
import { CLI, type CliResult } from "../support/process.js";

export const STORES = ["default", "alice", "bob"] as const;
export const NAMESPACES: ReadonlyArray<readonly [string, string]> = [
  ["", ""],
  ["monitors", ""],
  ["monitors", "archive"],
  ["payments", "inbound"],
];

/** Deterministic pseudo-random bytes of `size` (different per seed): xorshift32. */
export function bytes(size: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (seed * 2654435761 + 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, size);
}

const SIZES = [0, 1, 100, 4096, 65_536];

/**
 * Fills `store`: every store × namespace gets `perNamespace` keys of assorted sizes (one of them
 * empty), `default` root also a 1 MiB value; each key is written with a version, some twice (so
 * their revision is 2). Returns the number of keys.
 */
export async function seed(store: KVStore, perNamespace = 6, options: { big?: boolean } = {}): Promise<number> {
  let version = 1_000n;
  let count = 0;
  const writes: Promise<unknown>[] = [];
  for (const storeId of STORES) {
    for (const [primaryNamespace, secondaryNamespace] of NAMESPACES) {
      for (let i = 0; i < perNamespace; i++) {
        const ref = { storeId, primaryNamespace, secondaryNamespace, key: `key_${i}` };
        const size = SIZES[i % SIZES.length]!;
        writes.push(store.write(ref, bytes(size, count), { version: (version += 7n) }));
        count++;
      }
    }
  }
  await Promise.all(writes);
  // Second writes: revision 2 on every third key.
  const rewrites: Promise<unknown>[] = [];
  for (const storeId of STORES) {
    for (const [primaryNamespace, secondaryNamespace] of NAMESPACES) {
      for (let i = 0; i < perNamespace; i += 3) {
        const ref = { storeId, primaryNamespace, secondaryNamespace, key: `key_${i}` };
        rewrites.push(store.write(ref, bytes(SIZES[(i + 1) % SIZES.length]!, 10_000 + i), { version: (version += 7n) }));
      }
    }
  }
  if (options.big !== false) {
    const mib = { storeId: "default", primaryNamespace: "", secondaryNamespace: "", key: "manager" };
    rewrites.push(store.write(mib, bytes(1024 * 1024, 424242), { version: (version += 7n) }));
    count++;
  }
  await Promise.all(rewrites);
  return count;
}

export interface Entry {
  readonly value: Buffer;
  readonly version: bigint;
  readonly revision: bigint;
}

export function pathOf(ref: KeyRef & { storeId: string }): string {
  return `${ref.storeId}:${ref.primaryNamespace}/${ref.secondaryNamespace}/${ref.key}`;
}

/** Every key of every store with its value, version and revision. */
export async function snapshot(store: KVStore): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  for await (const ref of scanAllKeys(store, { allStores: true })) {
    const stored = await store.readVersioned(ref);
    entries.set(pathOf(ref), { value: Buffer.from(stored.value), version: stored.version, revision: stored.revision });
  }
  return entries;
}

/** Asserts equal keys and bytes; and versions and revisions too unless `versions` is false. */
export function expectSameData(actual: Map<string, Entry>, expected: Map<string, Entry>, versions = true): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [path, entry] of expected) {
    const got = actual.get(path)!;
    expect(got.value.equals(entry.value), `${path}: bytes differ`).toBe(true);
    if (versions) expect({ path, version: got.version, revision: got.revision }).toEqual({ path, version: entry.version, revision: entry.revision });
  }
}

export interface Spawned {
  readonly child: ChildProcess;
  /** stderr so far. */
  stderr(): string;
  /** stdout so far. */
  stdout(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stderr line matching `pattern`. */
  waitForStderr(pattern: RegExp): Promise<string>;
}

/** Spawns `tierkv ...args` in `cwd` (stdin closed). */
export function spawnCli(args: string[], cwd: string): Spawned {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => {
    err += chunk.toString();
    for (const waiter of [...waiters]) {
      const line = err.split("\n").find((l) => waiter.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    waitForStderr: (pattern) =>
      new Promise((resolve, reject) => {
        const seen = err.split("\n").find((l) => pattern.test(l));
        if (seen !== undefined) return resolve(seen);
        waiters.push({ pattern, resolve });
        void exited.then(({ code, signal }) => reject(new Error(`tierkv exited (${code ?? signal}) before printing ${pattern}: ${err}`)));
      }),
  };
}

/** Runs `tierkv ...args` in `cwd` to completion. */
export async function runCliIn(args: string[], cwd: string): Promise<CliResult> {
  const spawned = spawnCli(args, cwd);
  const { code } = await spawned.exited;
  return { code, stdout: Buffer.from(spawned.stdout()), stderr: spawned.stderr() };
}

/** Asserts a failed run: exit `code` and exactly one stderr line matching `pattern`, no stack trace. */
export function expectOneLineError(result: CliResult, code: number, pattern: RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  expect(result.stderr.trimEnd().split("\n"), result.stderr).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr).not.toContain("    at ");
}
