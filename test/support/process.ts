//! Spawns the built `tierkv` CLI as a real child process (see test/support/build.ts).

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The compiled CLI entry point. */
export const CLI = fileURLToPath(new URL("../../dist/src/cli/main.js", import.meta.url));

export interface ServerProcess {
  readonly child: ChildProcess;
  /** `host:port` the server bound, read from its "listening" log line. */
  readonly address: string;
  /** The "listening" log entry (address, metrics address, tiers). */
  readonly listening: Record<string, unknown>;
  /** Every stdout line so far (JSON logs). */
  readonly logs: string[];
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `tierkv serve --listen 127.0.0.1:0 ...args` and waits until it listens. */
export async function spawnServer(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, "serve", "--listen", "127.0.0.1:0", ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      logs.push(line);
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry["msg"] === "listening") resolve(entry);
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`tierkv serve exited (${code ?? signal}) before listening: ${stderr}`)),
    );
  });
  return {
    child,
    address: listening["address"] as string,
    listening,
    logs,
    exited,
    kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs `tierkv ...args` to completion, feeding `input` to stdin. */
export function runCli(args: string[], input?: Uint8Array, env?: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: "pipe" });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}
