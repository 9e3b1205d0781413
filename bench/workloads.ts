//! The benchmark's workloads: what one operation does, and what must exist before it runs.

import { randomBytes } from "node:crypto";
import type { BenchKey, Driver } from "./drivers.js";

export const WORKLOADS = ["write-1k", "write-64k", "read-1k", "ldk-mix", "txn-1k"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

/** Keys the workloads spread over, and that the LDK mix lists (the bench's smoke mode uses fewer). */
export const DEFAULT_KEY_COUNT = 10_000;
const LISTED = { primaryNamespace: "archived_monitors", secondaryNamespace: "" };

const key = (secondaryNamespace: string, i: number): BenchKey => ({ primaryNamespace: "bench", secondaryNamespace, key: `k${i}` });
const random = (n: number): number => Math.floor(Math.random() * n);

/** One load loop's next operation. */
export type Operation = () => Promise<void>;

export interface Workload {
  /** Writes what the operations need to find (reads, the listed namespace). */
  prepare(driver: Driver): Promise<void>;
  /**
   * Sets up load loop `index` (unique among the loops of one measurement) before the clock
   * starts, and returns its operation.
   */
  loop(driver: Driver, index: number): Promise<Operation>;
}

async function writeMany(driver: Driver, count: number, make: (i: number) => [BenchKey, Uint8Array]): Promise<void> {
  const parallel = 64;
  for (let start = 0; start < count; start += parallel) {
    await Promise.all(
      Array.from({ length: Math.min(parallel, count - start) }, (_, j) => driver.write(...make(start + j))),
    );
  }
}

/** A workload whose loops share nothing: every operation is `operation(driver)`. */
function stateless(prepare: (driver: Driver) => Promise<void>, operation: (driver: Driver) => Promise<void>): Workload {
  return { prepare, loop: async (driver) => () => operation(driver) };
}

export function workload(name: WorkloadName, keyCount = DEFAULT_KEY_COUNT): Workload {
  const KEY_SPACE = keyCount;
  const LISTED_KEYS = keyCount;
  // Values are made once: the benchmark measures the store, not the random generator.
  const small = randomBytes(1024);
  const large = randomBytes(64 * 1024);
  const monitorUpdate = randomBytes(512);
  const manager = randomBytes(128 * 1024);
  const nothing = async (): Promise<void> => {};
  switch (name) {
    case "write-1k":
      return stateless(nothing, (d) => d.write(key("w1k", random(KEY_SPACE)), small));
    case "write-64k":
      return stateless(nothing, (d) => d.write(key("w64k", random(KEY_SPACE)), large));
    case "read-1k":
      return stateless(
        (d) => writeMany(d, KEY_SPACE, (i) => [key("r1k", i), small]),
        (d) => d.read(key("r1k", random(KEY_SPACE))),
      );
    case "ldk-mix":
      // An LDK node: mostly small ChannelMonitor updates, some ChannelManager writes (one key,
      // 128 KiB), and now and then a listing of every key of a 10,000-key namespace (ten pages).
      return stateless(
        (d) => writeMany(d, LISTED_KEYS, (i) => [{ ...LISTED, key: `monitor_${i}` }, monitorUpdate]),
        async (d) => {
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
      );
    case "txn-1k":
      // A conditional increment: each loop owns one key and rewrites it (1 KiB, a counter in the
      // first 8 bytes) only if its revision is still the one the loop last saw. Compare with
      // write-1k: the same bytes, plus the check and the revision coming back.
      return {
        prepare: nothing,
        loop: async (driver, index) => {
          const ref: BenchKey = { primaryNamespace: "bench", secondaryNamespace: "txn", key: `counter_${index}` };
          const value = Buffer.from(small);
          let revision = await driver.revision(ref);
          let counter = 0n;
          return async () => {
            value.writeBigUInt64BE(++counter);
            try {
              revision = await driver.compareAndWrite(ref, revision, value);
            } catch (error) {
              // Counted as an error; the next attempt starts from what is stored.
              revision = await driver.revision(ref).catch(() => revision);
              throw error;
            }
          };
        },
      };
  }
}
