//! The benchmark's workloads: what one operation does, and what must exist before it runs.

import { randomBytes } from "node:crypto";
import type { BenchKey, Driver } from "./drivers.js";

export const WORKLOADS = ["write-1k", "write-64k", "read-1k", "ldk-mix"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

/** Keys the workloads spread over, and that the LDK mix lists (the bench's smoke mode uses fewer). */
export const DEFAULT_KEY_COUNT = 10_000;
const LISTED = { primaryNamespace: "archived_monitors", secondaryNamespace: "" };

const key = (secondaryNamespace: string, i: number): BenchKey => ({ primaryNamespace: "bench", secondaryNamespace, key: `k${i}` });
const random = (n: number): number => Math.floor(Math.random() * n);

export interface Workload {
  /** Writes what the operations need to find (reads, the listed namespace). */
  prepare(driver: Driver): Promise<void>;
  /** One operation. */
  operation(driver: Driver): Promise<void>;
}

async function writeMany(driver: Driver, count: number, make: (i: number) => [BenchKey, Uint8Array]): Promise<void> {
  const parallel = 64;
  for (let start = 0; start < count; start += parallel) {
    await Promise.all(
      Array.from({ length: Math.min(parallel, count - start) }, (_, j) => driver.write(...make(start + j))),
    );
  }
}

export function workload(name: WorkloadName, keyCount = DEFAULT_KEY_COUNT): Workload {
  const KEY_SPACE = keyCount;
  const LISTED_KEYS = keyCount;
  // Values are made once: the benchmark measures the store, not the random generator.
  const small = randomBytes(1024);
  const large = randomBytes(64 * 1024);
  const monitorUpdate = randomBytes(512);
  const manager = randomBytes(128 * 1024);
  switch (name) {
    case "write-1k":
      return { prepare: async () => {}, operation: (d) => d.write(key("w1k", random(KEY_SPACE)), small) };
    case "write-64k":
      return { prepare: async () => {}, operation: (d) => d.write(key("w64k", random(KEY_SPACE)), large) };
    case "read-1k":
      return {
        prepare: (d) => writeMany(d, KEY_SPACE, (i) => [key("r1k", i), small]),
        operation: (d) => d.read(key("r1k", random(KEY_SPACE))),
      };
    case "ldk-mix":
      // An LDK node: mostly small ChannelMonitor updates, some ChannelManager writes (one key,
      // 128 KiB), and now and then a listing of every key of a 10,000-key namespace (ten pages).
      return {
        prepare: (d) =>
          writeMany(d, LISTED_KEYS, (i) => [{ ...LISTED, key: `monitor_${i}` }, monitorUpdate]),
        operation: async (d) => {
          const dice = Math.random();
          if (dice < 0.9) {
            await d.write({ primaryNamespace: "monitor_updates", secondaryNamespace: `chan_${random(32)}`, key: `u${random(KEY_SPACE)}` }, monitorUpdate);
          } else if (dice < 0.99) {
            await d.write({ primaryNamespace: "", secondaryNamespace: "", key: "manager" }, manager);
          } else {
            const count = await d.listAll(LISTED);
            if (count < LISTED_KEYS) throw new Error(`listed ${count} keys, expected ${LISTED_KEYS}`);
          }
        },
      };
  }
}
