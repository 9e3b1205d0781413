// The backup's circuit breaker and adaptive time limits (issue 22, contract §4.12) with real
// processes: A (sqlite primary) chains to B, and 32 writers keep writing while B is stopped with
// SIGSTOP, then killed, then restarted on its port. Under degraded, the writes in flight when B
// stopped wait once for the backup's time limit; once A has marked B down, the writes' p99 stays
// close to their p99 with B up, and the debt is replayed when B returns; under
// required, writes fail fast with UNAVAILABLE and KVStoreService's health is NOT_SERVING while B
// is down. Transitions show in backup-status and in the metrics.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvAdminClient } from "../../src/client/admin-client.js";
import { TierkvClient } from "../../src/client/client.js";
import { StoreError } from "../../src/store/errors.js";
import type { BackupPolicy } from "../../src/tier/tier-store.js";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { makeCertificates } from "../support/certs.js";
import { healthStatus } from "../support/health.js";
import { Instance, sleep, waitOwedZero } from "../reliability/support/harness.js";
import { storedRows } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  removeTempDirs();
});

const WRITERS = 32;
const CLIENTS = 4;

async function backupStatus(address: string): Promise<Record<string, unknown>> {
  const admin = new TierkvAdminClient({ address, timeoutMs: 10_000 });
  try {
    const s = await admin.backupStatus();
    return { state: s.state, transitions: Number(s.transitions), downMs: Number(s.downMs), timeLimitMs: Number(s.timeLimitMs), owedKeys: Number(s.owedKeys) };
  } finally {
    admin.close();
  }
}

async function metricLine(metricsAddress: string, prefix: string): Promise<number> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`no metric ${prefix}`);
  return Number(line.split(" ").at(-1));
}

function p99(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? NaN;
}

/** 32 writers over a few clients, each on its own keys; latencies and errors per phase. */
class Writers {
  phase = "up";
  readonly latencies = new Map<string, number[]>();
  readonly failures = new Map<string, Array<{ code: string; ms: number }>>();
  private running = true;
  private readonly loops: Array<Promise<void>>;
  private readonly clients: TierkvClient[];

  constructor(address: string) {
    this.clients = Array.from({ length: CLIENTS }, () => new TierkvClient({ address, timeoutMs: 60_000 }));
    this.loops = Array.from({ length: WRITERS }, (_, w) => this.loop(w));
  }

  private async loop(writer: number): Promise<void> {
    const client = this.clients[writer % CLIENTS]!;
    for (let i = 0; this.running; i++) {
      let phase = this.phase;
      const started = performance.now();
      try {
        await client.write({ primaryNamespace: `w${writer}`, secondaryNamespace: "", key: `k${i % 16}` }, Buffer.from(`v${i}`), { deadline: Date.now() + 10_000 });
        // A write still in flight when B stopped counts as noticing the outage, not as "up".
        if (phase === "up" && this.phase !== "up" && this.phase !== "warm-up") phase = "noticing";
        const list = this.latencies.get(phase) ?? this.latencies.set(phase, []).get(phase)!;
        list.push(performance.now() - started);
      } catch (error) {
        const list = this.failures.get(phase) ?? this.failures.set(phase, []).get(phase)!;
        list.push({ code: error instanceof StoreError ? error.code : String(error), ms: performance.now() - started });
        await sleep(5);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((client) => client.close()));
  }
}

async function setUp(policy: BackupPolicy): Promise<{ a: Instance; b: Instance; files: { a: string; b: string } }> {
  const dir = tempDir("tierkv-breaker-");
  const files = { a: join(dir, "a.db"), b: join(dir, "b.db") };
  const b = new Instance("B", () => ["--primary", `sqlite:${files.b}`], { samePort: true });
  cleanup.push(() => b.destroy());
  await b.start();
  const a = new Instance("A", () => [
    "--primary", `sqlite:${files.a}`,
    "--backup", `grpc://${b.address}`,
    "--backup-policy", policy,
    "--metrics-listen", "127.0.0.1:0",
  ]);
  cleanup.push(() => a.destroy());
  await a.start();
  return { a, b, files };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check().catch(() => false)) return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

it("degraded: a backup stopped and killed under 32 writers costs the writes no stall; the debt is replayed when it returns", async () => {
  const { a, b, files } = await setUp("degraded");
  const metrics = a.running.listening["metrics"] as string;
  const writers = new Writers(a.address);
  cleanup.push(() => writers.stop());
  writers.phase = "warm-up";
  await sleep(1_000);
  writers.phase = "up";
  await sleep(3_000);

  // Noticing: the writes in flight when B stopped wait at most the backup's time limit once.
  writers.phase = "noticing";
  b.signal("SIGSTOP");
  const downAfterMs = await waitFor("backup marked down", async () => (await backupStatus(a.address))["state"] === "down", 10_000);
  writers.phase = "stopped";
  expect(await metricLine(metrics, 'tierkv_tier_up{tier="backup"}')).toBe(0);
  await sleep(3_000);
  writers.phase = "killed";
  await b.kill();
  await sleep(1_500);
  writers.phase = "back";
  await b.start();
  const upAfterMs = await waitFor("backup marked up", async () => (await backupStatus(a.address))["state"] === "up", 20_000);
  await sleep(500);
  await writers.stop();
  await waitOwedZero(a.address, 30_000);

  const status = await backupStatus(a.address);
  const up = writers.latencies.get("up") ?? [];
  const down = [...(writers.latencies.get("stopped") ?? []), ...(writers.latencies.get("killed") ?? [])];
  const noticing = writers.latencies.get("noticing") ?? [];
  const figures = {
    writesNoticing: noticing.length,
    maxNoticingMs: Math.round(Math.max(0, ...noticing)),
    writesUp: up.length,
    p99UpMs: Math.round(p99(up) * 10) / 10,
    writesDown: down.length,
    p99DownMs: Math.round(p99(down) * 10) / 10,
    maxDownMs: Math.round(Math.max(...down)),
    failures: Object.fromEntries([...writers.failures].map(([phase, list]) => [phase, list.length])),
    downAfterMs,
    upAfterMs,
    status,
  };
  console.log(`breaker, degraded: ${JSON.stringify(figures)}`);
  expect(writers.failures.size).toBe(0);
  expect(down.length).toBeGreaterThan(100);
  expect(p99(down)).toBeLessThan(p99(up) + 100);
  // Far from the old 30 s per write: one time limit (a multiple of B's p99), once per outage.
  expect(figures.maxNoticingMs).toBeLessThan(10_000);
  expect(status["transitions"]).toBeGreaterThanOrEqual(2);
  expect(status["downMs"]).toBeGreaterThan(1_000);
  expect(await metricLine(metrics, 'tierkv_tier_up{tier="backup"}')).toBe(1);
  expect(await metricLine(metrics, 'tierkv_tier_breaker_transitions_total{tier="backup"}')).toBeGreaterThanOrEqual(2);
  expect(await metricLine(metrics, "tierkv_backup_skipped_writes_total")).toBeGreaterThan(0);
  expect(a.logs().some((line) => line.includes("tier down (circuit open)"))).toBe(true);
  expect(a.logs().some((line) => line.includes("tier up (circuit closed)"))).toBe(true);

  expect(await a.stop()).toEqual({ code: 0, signal: null });
  expect(await b.stop()).toEqual({ code: 0, signal: null });
  const rowsA = storedRows(files.a);
  expect(rowsA.length).toBe(WRITERS * 16);
  expect(storedRows(files.b)).toEqual(rowsA);
}, 90_000);

it("required: writes fail fast with UNAVAILABLE while the backup is down, health is NOT_SERVING, and both return after", async () => {
  const { a, b, files } = await setUp("required");
  const service = KVStoreService.typeName;
  expect(await healthStatus(a.address, service)).toBe("SERVING");
  const writers = new Writers(a.address);
  cleanup.push(() => writers.stop());
  await sleep(1_500);

  writers.phase = "stopped";
  b.signal("SIGSTOP");
  await waitFor("backup marked down", async () => (await backupStatus(a.address))["state"] === "down", 10_000);
  writers.phase = "down";
  await sleep(1_000);
  expect(await healthStatus(a.address, service)).toBe("NOT_SERVING");
  expect(await healthStatus(a.address, "")).toBe("SERVING");
  writers.phase = "killed";
  await b.kill();
  await sleep(1_000);
  writers.phase = "back";
  await b.start();
  await waitFor("KVStoreService SERVING again", async () => (await healthStatus(a.address, service)) === "SERVING", 20_000);
  writers.phase = "after";
  await sleep(1_000);
  await writers.stop();
  await waitOwedZero(a.address, 30_000);

  const fastFailures = [...(writers.failures.get("down") ?? []), ...(writers.failures.get("killed") ?? [])];
  const stalled = writers.failures.get("stopped") ?? [];
  const figures = {
    p99UpMs: Math.round(p99(writers.latencies.get("up") ?? []) * 10) / 10,
    failuresWhileDown: fastFailures.length,
    p99FailureMs: Math.round(p99(fastFailures.map((f) => f.ms)) * 10) / 10,
    maxStalledMs: Math.round(Math.max(0, ...stalled.map((f) => f.ms))),
    codes: [...new Set(fastFailures.map((f) => f.code))],
    succeededAfter: writers.latencies.get("after")?.length ?? 0,
    status: await backupStatus(a.address),
  };
  console.log(`breaker, required: ${JSON.stringify(figures)}`);
  expect(fastFailures.length).toBeGreaterThan(100);
  expect(figures.codes).toEqual(["unavailable"]);
  // Refused before the key's turn or the primary: no slower than a write with B up.
  expect(p99(fastFailures.map((f) => f.ms))).toBeLessThan(figures.p99UpMs + 100);
  // The writes in flight when B stopped waited at most the time limit, far from the old 30 s.
  expect(figures.maxStalledMs).toBeLessThan(5_000);
  expect(figures.succeededAfter).toBeGreaterThan(0);
  expect(writers.failures.get("after") ?? []).toEqual([]);

  expect(await a.stop()).toEqual({ code: 0, signal: null });
  expect(await b.stop()).toEqual({ code: 0, signal: null });
  expect(storedRows(files.b)).toEqual(storedRows(files.a));
}, 90_000);

it("at start, a backup that cannot be reached is logged at warn with its real cause, and KVStoreService is NOT_SERVING", async () => {
  const dir = tempDir("tierkv-readiness-");
  const certs = makeCertificates(dir);
  const b = new Instance("B", () => ["--primary", `sqlite:${join(dir, "b.db")}`, "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey]);
  cleanup.push(() => b.destroy());
  await b.start();
  // grpcs:// without ca=: B's certificate cannot be verified.
  const a = new Instance("A", () => ["--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `grpcs://${b.address}`]);
  cleanup.push(() => a.destroy());
  await a.start();
  const warnings = a.logs().map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry["level"] === 40);
  const atStart = warnings.find((entry) => entry["msg"] === "tier did not answer at start");
  expect(atStart?.["tier"]).toBe("backup");
  expect(String(atStart?.["err"])).toMatch(/certificate/i);
  expect(warnings.some((entry) => String(entry["msg"]).startsWith("tier down (circuit open)"))).toBe(true);
  expect(await healthStatus(a.address, KVStoreService.typeName)).toBe("NOT_SERVING");
  expect(await backupStatus(a.address)).toMatchObject({ state: "down" });
  const client = new TierkvClient({ address: a.address });
  await expect(client.write({ primaryNamespace: "", secondaryNamespace: "", key: "k" }, Buffer.from("v"))).rejects.toMatchObject({ code: "unavailable" });
  await client.close();

  // Connection refused: the cause says so.
  const gone = b.address;
  await b.kill();
  const c = new Instance("C", () => ["--primary", `sqlite:${join(dir, "c.db")}`, "--backup", `grpc://${gone}`]);
  cleanup.push(() => c.destroy());
  await c.start();
  expect(c.logs().find((line) => line.includes("tier did not answer at start"))).toMatch(/ECONNREFUSED/);
  expect(await c.stop()).toEqual({ code: 0, signal: null });
  expect(await a.stop()).toEqual({ code: 0, signal: null });
}, 60_000);
