// The transport limits of startServer: `maxConcurrentStreams` caps the calls in flight on one
// connection, `messageLimitBytes` overrides the message size derived from `maxValueBytes`, and a
// nonsensical value of either is refused by name.
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { startServer } from "../../src/server/server.js";
import { StoreError } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { ForwardingStore } from "../support/fault-stores.js";
import { startTestServer, type TestServer, type TestServerOptions } from "../support/server.js";

/** Holds every read until `open()`, counting how many wait at once. */
class GatedStore extends ForwardingStore {
  waiting = 0;
  mostWaiting = 0;
  private release!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));

  protected override async before(operation: string): Promise<void> {
    if (operation !== "read") return;
    this.waiting++;
    this.mostWaiting = Math.max(this.mostWaiting, this.waiting);
    await this.gate;
    this.waiting--;
  }

  open(): void {
    this.release();
  }
}

const servers: TestServer[] = [];

async function start(store: MemoryStore | GatedStore, options: TestServerOptions): Promise<TestServer> {
  const server = await startTestServer(store, options);
  servers.push(server);
  return server;
}

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

const ref = (key: string) => ({ primaryNamespace: "ns", secondaryNamespace: "sub", key });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("maxConcurrentStreams", () => {
  /** Sends `calls` reads at once over the test client's one connection; returns the most that reached the store together. */
  async function mostConcurrentReads(options: TestServerOptions, calls: number): Promise<number> {
    const store = new GatedStore(new MemoryStore());
    const server = await start(store, options);
    await server.client.write(ref("k"), new Uint8Array([1]));
    const reads = Array.from({ length: calls }, () => server.client.read(ref("k")));
    // Long enough for every call the connection allows to reach the store.
    await sleep(300);
    const most = store.mostWaiting;
    store.open();
    // The held-back calls were queued, not refused: all of them succeed.
    expect((await Promise.all(reads)).map((value) => [...value])).toEqual(Array.from({ length: calls }, () => [1]));
    return most;
  }

  it("caps the calls in flight on one connection", async () => {
    expect(await mostConcurrentReads({ maxConcurrentStreams: 1 }, 3)).toBe(1);
    expect(await mostConcurrentReads({ maxConcurrentStreams: 2 }, 3)).toBe(2);
  });

  it("is unlimited by default", async () => {
    expect(await mostConcurrentReads({}, 3)).toBe(3);
  });
});

describe("messageLimitBytes", () => {
  it("overrides the limit derived from maxValueBytes", async () => {
    const server = await start(new MemoryStore(), { maxValueBytes: 1024 * 1024, messageLimitBytes: 4096 });
    await server.client.write(ref("small"), new Uint8Array(3000));
    const error = await server.client.write(ref("big"), new Uint8Array(8192)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe("resource-exhausted");
    expect((error as StoreError).message).toMatch(/larger than max/);
  });

  it("defaults to room for the largest value", async () => {
    const server = await start(new MemoryStore(), { maxValueBytes: 128 * 1024 });
    await server.client.write(ref("big"), new Uint8Array(128 * 1024));
    expect(await server.client.read(ref("big"))).toHaveLength(128 * 1024);
  });
});

describe("a nonsensical limit", () => {
  for (const [name, value] of [
    ["maxConcurrentStreams", 0],
    ["maxConcurrentStreams", 1.5],
    ["maxConcurrentStreams", 2 ** 32],
    ["messageLimitBytes", -1],
    ["messageLimitBytes", Number.NaN],
  ] as const) {
    it(`is refused: ${name} ${value}`, async () => {
      const starting = startServer({
        listen: "127.0.0.1:0",
        store: new MemoryStore(),
        limits: { ...DEFAULT_LIMITS, maxValueBytes: 1024, ...(name === "maxConcurrentStreams" && { maxConcurrentStreams: value }) },
        ...(name === "messageLimitBytes" && { messageLimitBytes: value }),
        logger: silentLogger(),
      });
      await expect(starting).rejects.toThrow(new RegExp(`^${name} must be an integer from 1 to \\d+, not ${value}$`));
    });
  }
});
