//! The servers under test, each started fresh as its own process(es) on loopback.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { DriverKind } from "./drivers.js";

export const TARGETS = ["tierkv-sqlite", "tierkv-sqlite+sqlite-backup", "tierkv-sqlite+remote-backup", "etcd", "grpc-ceiling"] as const;
export type TargetName = (typeof TARGETS)[number];

export interface RunningTarget {
  readonly name: TargetName;
  readonly kind: DriverKind;
  readonly address: string;
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

/** Every server process started and not yet stopped: killed if the bench itself is stopped. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const CEILING = fileURLToPath(new URL("./ceiling-server.js", import.meta.url));

/** Starts `command` and resolves with the first stdout line `pick` accepts. */
function startProcess(command: string, args: string[], pick: (line: string) => string | undefined): Promise<{ child: ChildProcess; address: string }> {
  const child = track(spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] }));
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const address = pick(line);
      if (address !== undefined) resolve({ child, address });
    });
    child.once("exit", (code) => reject(new Error(`${command} exited (${code}) before it was ready: ${stderr}`)));
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

function tierkvListening(line: string): string | undefined {
  try {
    const entry = JSON.parse(line) as { msg?: string; address?: string };
    return entry.msg === "listening" ? entry.address : undefined;
  } catch {
    return undefined;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether an `etcd` binary is on the PATH (Debian: etcd-server). */
export function etcdInstalled(): boolean {
  try {
    execFileSync("etcd", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Waits until etcd answers on its client port (it logs to stderr, so poll the port). */
async function startEtcd(dataDir: string): Promise<{ child: ChildProcess; address: string }> {
  const [client, peer] = [await freePort(), await freePort()];
  const child = track(spawn(
    "etcd",
    [
      "--data-dir", dataDir,
      "--listen-client-urls", `http://127.0.0.1:${client}`,
      "--advertise-client-urls", `http://127.0.0.1:${client}`,
      "--listen-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-cluster", `default=http://127.0.0.1:${peer}`,
      "--log-level", "error",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  ));
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderr}`);
    const ready = await fetch(`http://127.0.0.1:${client}/health`).then(
      async (response) => response.ok && ((await response.json()) as { health?: string }).health === "true",
      () => false,
    );
    if (ready) return { child, address: `127.0.0.1:${client}` };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopProcess(child);
  throw new Error(`etcd did not become healthy: ${stderr}`);
}

/** Starts `name` with fresh data in a temp dir that `stop()` removes. */
export async function startTarget(name: TargetName): Promise<RunningTarget> {
  const dir = mkdtempSync(join(tmpdir(), `tierkv-bench-${name}-`));
  const children: ChildProcess[] = [];
  const tierkv = async (...args: string[]): Promise<string> => {
    const started = await startProcess(process.execPath, [CLI, "serve", "--listen", "127.0.0.1:0", ...args], tierkvListening);
    children.push(started.child);
    return started.address;
  };
  let address: string;
  let kind: DriverKind = "tierkv";
  switch (name) {
    case "tierkv-sqlite":
      address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`);
      break;
    case "tierkv-sqlite+sqlite-backup":
      address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `sqlite:${join(dir, "b.db")}`);
      break;
    case "tierkv-sqlite+remote-backup": {
      const backup = await tierkv("--primary", `sqlite:${join(dir, "b.db")}`);
      address = await tierkv("--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `grpc://${backup}`);
      break;
    }
    case "etcd": {
      const etcd = await startEtcd(join(dir, "etcd"));
      children.push(etcd.child);
      ({ address } = etcd);
      kind = "etcd";
      break;
    }
    case "grpc-ceiling": {
      const ceiling = await startProcess(process.execPath, [CEILING], (line) => (JSON.parse(line) as { address: string }).address);
      children.push(ceiling.child);
      ({ address } = ceiling);
      break;
    }
  }
  return {
    name,
    kind,
    address,
    pids: children.map((child) => child.pid!),
    async stop() {
      for (const child of children.reverse()) await stopProcess(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
