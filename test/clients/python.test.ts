// The generated Python client (clients/python: buf-generated tierkv.v1 messages and gRPC stubs
// under a thin tierkv_client wrapper) against a real `tierkv serve --auth tokens` process with a
// token made by `tierkv token add`. Debian's /usr/bin/python3 with python3-grpcio and
// python3-protobuf runs clients/python/tests/test_core.py, which reports one JSON line per check:
// round trip, not found, remove, invalid argument, a paging walk, Txn, auth and health.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addTokenWithCli } from "../support/auth.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

/** Debian's interpreter: `python3` on PATH may be another one (pyenv's) without grpc. */
const PYTHON = "/usr/bin/python3";
const CLIENT_DIR = fileURLToPath(new URL("../../clients/python/", import.meta.url));
const SCRIPT = join(CLIENT_DIR, "tests", "test_core.py");
const CHECKS = ["round_trip", "not_found", "remove", "invalid_argument", "paging", "txn", "auth", "health"];
const SCRIPT_TIMEOUT_MS = 120_000;

interface ScriptResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment for Python: no bytecode written next to the generated modules, no proxy. */
function pythonEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...extra };
  for (const name of ["PYTHONPATH", "PYTHONHOME", "http_proxy", "https_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY"]) {
    delete env[name];
  }
  return env;
}

/** Why Debian's python3 cannot run the client (it cannot import grpc and protobuf), or undefined. */
function pythonGrpcProblem(): string | undefined {
  const probe = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { env: pythonEnv({}), encoding: "utf8" });
  if (probe.error === undefined && probe.status === 0) return undefined;
  return (
    `${PYTHON} cannot import grpc and google.protobuf (${probe.error?.message ?? probe.stderr.trim()}): ` +
    "install python3-grpcio and python3-protobuf (apt-get install -y python3-grpcio python3-protobuf; .ci/run installs them)"
  );
}

function runScript(env: Record<string, string>): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT], { cwd: CLIENT_DIR, env: pythonEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), SCRIPT_TIMEOUT_MS);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

let server: ServerProcess | undefined;
/** Set when Debian's python3 lacks grpc: every test then fails (never skips) with it. */
let pythonProblem: string | undefined;
let result: ScriptResult | undefined;
/** Each check's report line, by name. */
const reports = new Map<string, { ok: boolean; error?: string }>();

beforeAll(async () => {
  pythonProblem = pythonGrpcProblem();
  if (pythonProblem !== undefined) return;
  const dir = tempDir();
  const tokensFile = join(dir, "identities.json");
  const token = await addTokenWithCli(tokensFile, "py", ["write"], "python-client");
  server = await spawnServer(["--primary", "memory:", "--auth", "tokens", "--tokens-file", tokensFile]);
  result = await runScript({ TIERKV_ADDRESS: server.address, TIERKV_TOKEN: token });
  for (const line of result.stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { check?: string; ok?: boolean; error?: string };
    if (entry.check !== undefined) reports.set(entry.check, { ok: entry.ok === true, ...(entry.error !== undefined && { error: entry.error }) });
  }
}, SCRIPT_TIMEOUT_MS + 30_000);

afterAll(async () => {
  if (server !== undefined) expect(await server.kill()).toEqual({ code: 0, signal: null });
  removeTempDirs();
});

/** The script's result; throws the missing-python3-grpcio message instead when there is none. */
function scriptResult(): ScriptResult {
  if (pythonProblem !== undefined) throw new Error(pythonProblem);
  expect(result).toBeDefined();
  return result!;
}

describe("the Python client (clients/python) against tierkv serve --auth tokens", () => {
  it("has Debian's /usr/bin/python3 with grpc and protobuf", () => {
    if (pythonProblem !== undefined) throw new Error(pythonProblem);
  });

  it("runs tests/test_core.py to exit code 0 with every check reported", () => {
    const result = scriptResult();
    const output = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
    expect(result.signal, output).toBeNull();
    expect(result.code, output).toBe(0);
    expect([...reports.keys()].sort(), output).toEqual([...CHECKS].sort());
    expect(JSON.parse(result.stdout.trimEnd().split("\n").at(-1)!), output).toEqual({ passed: CHECKS.length, failed: 0 });
  });

  it.each(CHECKS)("check %s passed", (name) => {
    const result = scriptResult();
    const report = reports.get(name);
    expect(report, `no report for ${name}; stderr:\n${result.stderr}`).toBeDefined();
    expect(report!.error ?? "", result.stderr).toBe("");
    expect(report!.ok).toBe(true);
  });
});
