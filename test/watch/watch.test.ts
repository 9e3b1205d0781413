// Watch against real `tierkv serve` processes (contract §9): a watcher from sequence N gets exactly
// the changes after it while 16 writers run (SQLite; two instances sharing PostgreSQL, one under
// faketime); Connect server streaming as curl speaks it; retention's OUT_OF_RANGE; a stalled
// watcher ended with where to resume; tenants isolated on every surface.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { connect as connectHttp2 } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { status as grpcStatus } from "@grpc/grpc-js";
import { WatchRequestSchema, WatchResponseSchema } from "../../gen/tierkv/v1/kvstore_pb.js";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { StoreError } from "../../src/store/errors.js";
import type { Change, KeyRef } from "../../src/store/types.js";
import type { WatchEvent } from "../../src/watch/change-feed.js";
import { addTokenWithCli } from "../support/auth.js";
import { skewedClock } from "../support/faketime.js";
import { usePostgres } from "../support/postgres.js";
import { CLI, spawnServer, type ServerProcess } from "../support/process.js";
import { text } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);
const at = (key: string): KeyRef => ({ primaryNamespace: "cfg", secondaryNamespace: "", key });

/** One message in the envelope gRPC, gRPC-Web and Connect streams use: a zero flag byte, a 4-byte length, the bytes. */
function enveloped(message: Uint8Array): Uint8Array {
  const framed = new Uint8Array(5 + message.byteLength);
  new DataView(framed.buffer).setUint32(1, message.byteLength);
  framed.set(message, 5);
  return framed;
}

const running: Array<{ server: ServerProcess; clients: TierkvClient[] }> = [];
afterEach(async () => {
  for (const { server, clients } of running.splice(0)) {
    await Promise.all(clients.map((client) => client.close()));
    await server.kill();
  }
  removeTempDirs();
});

async function serve(args: string[], env?: NodeJS.ProcessEnv): Promise<{ server: ServerProcess; client: (token?: string) => TierkvClient; http: string }> {
  const server = await spawnServer([...args, "--vss-listen", "127.0.0.1:0"], env === undefined ? {} : { env });
  const entry = { server, clients: [] as TierkvClient[] };
  running.push(entry);
  return {
    server,
    http: `http://${server.listening["vss"] as string}`,
    client: (token) => {
      const client = new TierkvClient({ address: server.address, timeoutMs: 20_000, ...(token !== undefined && { bearerToken: token }) });
      entry.clients.push(client);
      return client;
    },
  };
}

/** Collects a watch's changes until `until` says it has enough (or the bound passes). */
async function collect(events: AsyncIterable<WatchEvent>, until: (changes: Change[]) => boolean, abort: AbortController, ms = 30_000): Promise<Change[]> {
  const changes: Change[] = [];
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    for await (const event of events) {
      if (event.kind === "change") changes.push(event.change);
      if (until(changes)) break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return changes;
}

/** 16 writers, `perWriter` writes each (some removes), spread over `clients`. */
async function writers(clients: TierkvClient[], perWriter: number): Promise<number> {
  let mutations = 0;
  await Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      const kv = clients[w % clients.length]!;
      for (let i = 0; i < perWriter; i++) {
        if (i % 5 === 4) await kv.remove(at(`k${w}_${i - 1}`));
        else await kv.write(at(`k${w}_${i}`), bytes(`w${w} i${i}`));
        mutations++;
      }
    }),
  );
  return mutations;
}

/** Checks a run of changes is gap-free from `from`, and that each key's last change is what the store holds. */
async function expectExactly(changes: Change[], from: bigint, count: number, kv: TierkvClient): Promise<void> {
  expect(changes.map((change) => change.seq)).toEqual(Array.from({ length: count }, (_, i) => from + BigInt(i)));
  const last = new Map(changes.map((change) => [change.key, change]));
  for (const [key, change] of last) {
    if (change.kind === "remove") {
      await expect(kv.read(at(key))).rejects.toMatchObject({ code: "not-found" });
    } else {
      const stored = await kv.readVersioned(at(key));
      expect([text(change.value!), change.version, change.revision]).toEqual([text(stored.value), stored.version, stored.revision]);
    }
  }
}

describe("Watch on a SQLite primary", () => {
  it("delivers exactly the changes from sequence N, in order, while 16 writers run", async () => {
    const dir = tempDir();
    const { client } = await serve(["--primary", `sqlite:${join(dir, "kv.db")}`]);
    const kv = client();
    // 10 changes before the watch: it starts at 6, inside the history.
    for (let i = 0; i < 10; i++) await kv.write(at(`before${i}`), bytes(`b${i}`));
    const abort = new AbortController();
    const total = 5 + 16 * 40;
    const watched = collect(kv.watch({ start: 6n, values: true }, abort.signal), (changes) => changes.length >= total, abort);
    expect(await writers([kv], 40)).toBe(16 * 40);
    const changes = await watched;
    await expectExactly(changes, 6n, total, kv);
  });

  it("tierkv watch prints one JSON line per change until interrupted", async () => {
    const dir = tempDir();
    const { server, client } = await serve(["--primary", `sqlite:${join(dir, "kv.db")}`]);
    const kv = client();
    await kv.write(at("a"), bytes("one"));
    await kv.write({ primaryNamespace: "other", secondaryNamespace: "", key: "b" }, bytes("x"));
    await kv.remove(at("a"));
    const cli = spawn(process.execPath, [CLI, "--server", server.address, "watch", "cfg", "--from", "1", "--values"], { stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => cli.once("exit", (code) => resolve(code)));
    createInterface({ input: cli.stdout! }).on("line", (line) => {
      lines.push(line);
      if (lines.length === 2) cli.kill("SIGINT");
    });
    expect(await exited).toBe(0);
    expect(lines.map((line) => JSON.parse(line) as unknown)).toEqual([
      { seq: 1, type: "put", path: "cfg/a", version: expect.stringMatching(/^[1-9]\d*$/), revision: "1", size: 3, superseded: true },
      { seq: 3, type: "remove", path: "cfg/a", version: expect.stringMatching(/^[1-9]\d*$/), revision: "0", size: 0 },
    ]);
  });

  it("serves Connect server streaming as curl speaks it, and progress while idle", async () => {
    const dir = tempDir();
    const { client, http } = await serve(["--primary", `sqlite:${join(dir, "kv.db")}`, "--watch-progress-interval-ms", "200"]);
    const kv = client();
    await kv.write(at("a"), bytes("one"));
    await kv.remove(at("a"));
    // curl -N --json-style: a Connect streaming request is one envelope (flags 0, length, JSON).
    const json = bytes(JSON.stringify({ startSequence: "1", values: true }));
    const envelope = enveloped(json);
    const abort = new AbortController();
    const response = await fetch(`${http}/tierkv.v1.KVStoreService/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: envelope,
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    const messages: Array<Record<string, unknown>> = [];
    let buffer = new Uint8Array(0);
    const reader = response.body!.getReader();
    while (messages.filter((m) => "progress" in m).length === 0) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = new Uint8Array([...buffer, ...value]);
      while (buffer.byteLength >= 5) {
        const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
        if (buffer.byteLength < 5 + length) break;
        messages.push(JSON.parse(new TextDecoder().decode(buffer.subarray(5, 5 + length))) as Record<string, unknown>);
        buffer = buffer.subarray(5 + length);
      }
    }
    abort.abort();
    expect(messages[0]).toMatchObject({ change: { sequence: "1", type: "CHANGE_TYPE_PUT", primaryNamespace: "cfg", key: "a", size: "3", superseded: true } });
    expect(messages[1]).toMatchObject({ change: { sequence: "2", type: "CHANGE_TYPE_REMOVE", key: "a" } });
    expect(messages[2]).toMatchObject({ progress: { sequence: "2" } });
  });

  it("serves gRPC-Web server streaming", async () => {
    const dir = tempDir();
    const { client, http } = await serve(["--primary", `sqlite:${join(dir, "kv.db")}`]);
    await client().write(at("a"), bytes("one"));
    const request = toBinary(WatchRequestSchema, create(WatchRequestSchema, { startSequence: 1n, values: true }));
    const framed = enveloped(request);
    const abort = new AbortController();
    const response = await fetch(`${http}/tierkv.v1.KVStoreService/Watch`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: framed,
      signal: abort.signal,
    });
    const reader = response.body!.getReader();
    let body = Buffer.alloc(0);
    while (body.byteLength < 5 || body.byteLength < 5 + body.readUInt32BE(1)) body = Buffer.concat([body, (await reader.read()).value!]);
    abort.abort();
    const event = fromBinary(WatchResponseSchema, body.subarray(5, 5 + body.readUInt32BE(1))).event;
    expect(event.case).toBe("change");
    expect(event.case === "change" && [event.value.sequence, event.value.key, text(event.value.value)]).toEqual([1n, "a", "one"]);
  });

  it("answers OUT_OF_RANGE with the oldest kept sequence once retention pruned what a watch asks for", async () => {
    const dir = tempDir();
    const { client } = await serve(["--primary", `sqlite:${join(dir, "kv.db")}`, "--watch-retention", "5"]);
    const kv = client();
    for (let i = 0; i < 20; i++) await kv.write(at(`k${i}`), bytes("v"));
    // Pruning runs in the background: wait (bounded) until it has.
    let error: StoreError | undefined;
    for (let attempt = 0; attempt < 100 && error === undefined; attempt++) {
      try {
        const abort = new AbortController();
        await collect(kv.watch({ start: 1n }, abort.signal), (changes) => changes.length > 0, abort, 2_000);
        await new Promise((resolve) => setTimeout(resolve, 200));
      } catch (caught) {
        error = caught as StoreError;
      }
    }
    expect(error?.code).toBe("out-of-range");
    expect(error?.message).toMatch(/before sequence 16 are no longer kept.*start from 16/);
    const abort = new AbortController();
    const kept = await collect(kv.watch({ start: 16n }, abort.signal), (changes) => changes.length >= 5, abort);
    expect(kept.map((change) => change.seq)).toEqual([16n, 17n, 18n, 19n, 20n]);
    // A start ahead of the store is refused too (a follower of another leader's history).
    await expect(collect(kv.watch({ start: 100n }, new AbortController().signal), () => true, new AbortController())).rejects.toMatchObject({
      code: "out-of-range",
    });
  });

  it("ends a watcher that stops reading with RESOURCE_EXHAUSTED and where to resume, server memory bounded", async () => {
    const dir = tempDir();
    const { server, client } = await serve(["--primary", `sqlite:${join(dir, "kv.db")}`, "--stream-max-stall-ms", "300"]);
    const writer = client();
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.child.pid}/status`, "utf8"))![1]) * 1024;
    await writer.write(at("first"), new Uint8Array(64 * 1024));
    const before = rss();
    // A gRPC client that sends its request and then stops reading: HTTP/2 flow control holds the
    // server's writes once the window is full.
    const session = connectHttp2(`http://${server.address}`);
    const request = toBinary(WatchRequestSchema, create(WatchRequestSchema, { startSequence: 1n, values: true }));
    const framed = enveloped(request);
    const stream = session.request({ ":method": "POST", ":path": "/tierkv.v1.KVStoreService/Watch", "content-type": "application/grpc", te: "trailers" });
    stream.end(framed);
    stream.pause();
    // 100 changes of 64 KiB (6.4 MiB) pile up behind it.
    for (let i = 0; i < 100; i++) await writer.write(at(`big${i % 20}`), new Uint8Array(64 * 1024).fill(i));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(rss() - before).toBeLessThan(64 * 1024 * 1024);
    // Now it reads: what was written, then the status saying where to resume.
    const chunks: Buffer[] = [];
    const trailers = new Promise<Record<string, unknown>>((resolve) => stream.once("trailers", (headers) => resolve(headers)));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.resume();
    const status = await trailers;
    session.close();
    expect(status["grpc-status"]).toBe(String(grpcStatus.RESOURCE_EXHAUSTED));
    const message = decodeURIComponent(String(status["grpc-message"]));
    expect(message).toMatch(/resume from/);
    const resume = BigInt(/resume from (\d+)/.exec(message)![1]!);
    const body = Buffer.concat(chunks);
    const seen: bigint[] = [];
    for (let offset = 0; offset + 5 <= body.byteLength; ) {
      const length = body.readUInt32BE(offset + 1);
      const event = fromBinary(WatchResponseSchema, body.subarray(offset + 5, offset + 5 + length)).event;
      if (event.case === "change") seen.push(event.value.sequence);
      offset += 5 + length;
    }
    expect(resume).toBe(seen.at(-1)! + 1n);
    expect(resume).toBeLessThan(101n);
    // Resuming there misses nothing.
    const kv = client();
    const again = new AbortController();
    const rest = await collect(kv.watch({ start: resume }, again.signal), (changes) => changes.at(-1)?.seq === 101n, again);
    expect([...seen, ...rest.map((change) => change.seq)]).toEqual(Array.from({ length: 101 }, (_, i) => BigInt(i + 1)));
  });

  it("keeps tenants apart: a store's watch sees its own changes; another store needs replicate or admin, on gRPC and Connect", async () => {
    const dir = tempDir();
    const tokens = join(dir, "tokens.json");
    const alice = await addTokenWithCli(tokens, "alice", ["read", "write"]);
    const bob = await addTokenWithCli(tokens, "bob", ["read", "write"]);
    const replica = await addTokenWithCli(tokens, "replica", ["replicate"]);
    const { client, http } = await serve(["--primary", `sqlite:${join(dir, "kv.db")}`, "--auth", "tokens", "--tokens-file", tokens]);
    const [aliceKv, bobKv, replicaKv] = [client(alice), client(bob), client(replica)];
    await aliceKv.write(at("mine"), bytes("alice's"));
    await bobKv.write(at("theirs"), bytes("bob's"));
    const aliceChanges = await collect(aliceKv.watch({ start: 1n }, new AbortController().signal), (changes) => changes.length >= 1, new AbortController(), 2_000);
    expect(aliceChanges.map((change) => [change.storeId, change.key])).toEqual([["alice", "mine"]]);
    await expect(collect(aliceKv.watch({ storeId: "bob", start: 1n }), () => true, new AbortController())).rejects.toMatchObject({ code: "permission-denied" });
    await expect(collect(aliceKv.watch({ allStores: true, start: 1n }), () => true, new AbortController())).rejects.toMatchObject({ code: "permission-denied" });
    const denied = await fetch(`${http}/tierkv.v1.KVStoreService/Watch`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${alice}` },
      body: JSON.stringify({ storeId: "bob", startSequence: "1" }),
    });
    // A Connect unary-style JSON request to a streaming method is refused by the protocol; the streaming form is checked below.
    expect(denied.status).not.toBe(200);
    const json = bytes(JSON.stringify({ storeId: "bob", startSequence: "1" }));
    const envelope = enveloped(json);
    const streamed = await fetch(`${http}/tierkv.v1.KVStoreService/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${alice}` },
      body: envelope,
    });
    const answer = new TextDecoder().decode(await streamed.arrayBuffer());
    expect(answer).toMatch(/permission_denied/);
    expect(answer).toMatch(/may not watch another store/);
    const everything = await collect(replicaKv.watch({ allStores: true, start: 1n }, new AbortController().signal), (changes) => changes.length >= 2, new AbortController());
    expect(everything.map((change) => `${change.storeId}/${change.key}`).sort()).toEqual(["alice/mine", "bob/theirs"]);
  });
});

describe("Watch on two instances sharing PostgreSQL, one under faketime", () => {
  const postgres = usePostgres();

  it("a watcher on one instance gets every change of both, gap-free, from sequence N", async () => {
    const uri = await postgres().createDatabase();
    const a = await serve(["--primary", uri]);
    const b = await serve(["--primary", uri], skewedClock("+5m"));
    const [kvA, kvB] = [a.client(), b.client()];
    for (let i = 0; i < 4; i++) await kvB.write(at(`before${i}`), bytes("b"));
    const abort = new AbortController();
    const total = 2 + 16 * 25;
    const watched = collect(kvA.watch({ start: 3n, values: true }, abort.signal), (changes) => changes.length >= total, abort, 60_000);
    await writers([kvA, kvB], 25);
    await expectExactly(await watched, 3n, total, kvA);
  });
});
