//! Helpers for authentication tests: tokens made with the real `tierkv token add`, raw calls with
//! any `authorization` header, client certificates with a chosen subject, and store snapshots.

import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { expect } from "vitest";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { grpcClientConstructor } from "../../src/rpc/service-definition.js";
import { fromGrpcError } from "../../src/rpc/status.js";
import { StoreError, type StoreErrorCode } from "../../src/store/errors.js";
import type { AllKeysRequest, KVStore, KeyVersion } from "../../src/store/types.js";
import { CLI, runCli, type CliResult, type ServerProcess } from "./process.js";

/**
 * Runs `tierkv token add --tokens-file FILE --store STORE --role ROLE...` and returns the token:
 * the last line of its output. Fails the test when the command fails.
 */
export async function addTokenWithCli(file: string, store: string, roles: readonly string[], name?: string): Promise<string> {
  const args = ["token", "add", "--tokens-file", file, "--store", store, "--role", ...roles, ...(name === undefined ? [] : ["--name", name])];
  const result = await runCli(args);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  const lines = result.stdout.toString("utf8").trimEnd().split("\n");
  const token = lines.at(-1)!;
  expect(token).toMatch(/^tkv_[A-Za-z0-9_-]{43}$/);
  return token;
}

/** Writes `token` to `dir/name` (a `--token-file` / `token_file=`) and returns the path. */
export function writeTokenFile(dir: string, name: string, token: string): string {
  const path = join(dir, name);
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return path;
}

/** The StoreError a promise rejects with; fails the test when it resolves or rejects otherwise. */
export async function failure(promise: Promise<unknown>): Promise<StoreError> {
  const outcome = await promise.then(
    (value: unknown) => ({ resolved: value }),
    (error: unknown) => ({ rejected: error }),
  );
  if (!("rejected" in outcome)) throw new Error(`expected a failure, got ${String(outcome.resolved)}`);
  expect(outcome.rejected).toBeInstanceOf(StoreError);
  return outcome.rejected as StoreError;
}

/** Asserts that `promise` rejects with a StoreError of `code`; returns its message. */
export async function expectCode(promise: Promise<unknown>, code: StoreErrorCode): Promise<string> {
  const error = await failure(promise);
  expect(error.code, error.message).toBe(code);
  return error.message;
}

/** Every key `listAllKeys` returns for `request`, following page tokens with pages of `pageSize`. */
export async function allKeys(store: KVStore, request: Omit<AllKeysRequest, "pageToken" | "limit"> = {}, pageSize = 3): Promise<KeyVersion[]> {
  const keys: KeyVersion[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    const page = await store.listAllKeys({ ...request, pageToken, limit: pageSize });
    expect(page.keys.length).toBeLessThanOrEqual(pageSize);
    keys.push(...page.keys);
    pageToken = page.nextPageToken;
    if (++pages > 10_000) throw new Error("listAllKeys never ended");
  } while (pageToken !== "");
  return keys;
}

/** `store/primary/secondary/key` of each key, for readable comparisons. */
export function paths(keys: readonly KeyVersion[]): string[] {
  return keys.map((k) => `${k.storeId}/${k.primaryNamespace}/${k.secondaryNamespace}/${k.key}`);
}

type Methods = (typeof KVStoreService)["method"];
type Method = keyof Methods;
type RawUnary = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

const RawClient = grpcClientConstructor(KVStoreService);

/**
 * A KVStoreService client that sends exactly the `authorization` header given (or none), bypassing
 * the TypeScript client: for malformed credentials.
 */
export class RawKvClient {
  private readonly raw: grpc.Client;

  constructor(
    private readonly address: string,
    private readonly authorization: string | undefined,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    this.raw = new RawClient(address, credentials);
  }

  call<M extends Method>(method: M, init: MessageInitShape<Methods[M]["input"]>): Promise<MessageShape<Methods[M]["output"]>> {
    const request = create(KVStoreService.method[method].input, init);
    const metadata = new grpc.Metadata();
    if (this.authorization !== undefined) metadata.set("authorization", this.authorization);
    const unary = (this.raw as unknown as Record<Method, RawUnary>)[method].bind(this.raw);
    return new Promise((resolve, reject) => {
      unary(request, metadata, { deadline: Date.now() + 20_000 }, (error, response) =>
        error ? reject(fromGrpcError(error, this.address)) : resolve(response as MessageShape<Methods[M]["output"]>),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}

/** Resolves once a log line of `server` satisfies `match` (lines already logged count). */
export async function waitForLog(
  server: ServerProcess,
  match: (entry: Record<string, unknown>) => boolean,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const line of server.logs) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (match(entry)) return entry;
    }
    if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms; logs:\n${server.logs.join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface ClientCertificate {
  readonly cert: string;
  readonly key: string;
}

/**
 * A client certificate with subject `CN=<commonName>` signed by the CA that `makeCertificates`
 * wrote into `dir` (ca.pem, ca.key); a P-256 key, which openssl makes at once.
 */
export function issueClientCertificate(dir: string, commonName: string, caName = "ca"): ClientCertificate {
  const run = (...args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const base = `client-${commonName}-${caName}`;
  run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${commonName}`,
    "-keyout", `${base}.key`, "-out", `${base}.csr`);
  writeFileSync(join(dir, `${base}.ext`), "extendedKeyUsage=clientAuth\n");
  run("x509", "-req", "-in", `${base}.csr`, "-CA", `${caName}.pem`, "-CAkey", `${caName}.key`, "-CAcreateserial",
    "-days", "2", "-extfile", `${base}.ext`, "-out", `${base}.pem`);
  return { cert: join(dir, `${base}.pem`), key: join(dir, `${base}.key`) };
}

/** A second, unrelated CA in `dir` (`<name>.pem`, `<name>.key`), for certificates the server must not trust. */
export function makeOtherCa(dir: string, name = "other-ca"): string {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=untrusted CA", "-keyout", `${name}.key`, "-out", `${name}.pem`], { cwd: dir, stdio: "pipe" });
  return name;
}

/**
 * Runs `tierkv ...args` like `runCli`, but kills it (SIGKILL) when it has not exited within
 * `timeoutMs`: for commands that must exit at once and would otherwise serve forever.
 */
export function runCliBounded(args: string[], timeoutMs = 15_000): Promise<CliResult & { timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr, timedOut });
    });
  });
}
