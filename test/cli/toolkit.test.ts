// The operator's toolkit through the real binary: `token list` / `token rm`, `--store` against a
// server that authenticates (a role that may name another store, and one that may not),
// `ls --namespaces`, and exit codes (2 for usage and settings errors, 1 for a failed call).
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/auth/identities-file.js";
import { addTokenWithCli, writeTokenFile } from "../support/auth.js";
import { runCli, spawnServer, type CliResult, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

/** Asserts a failed run: exit `code` and exactly one stderr line matching `pattern`, no stack trace. */
function expectOneLineError(result: CliResult, code: number, pattern: RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr).not.toContain("    at ");
}

function expectOk(result: CliResult): string {
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return result.stdout.toString();
}

afterAll(removeTempDirs);

describe("tierkv token list / rm", () => {
  it("lists entries without secrets or hashes, removes one by id keeping the mode, and refuses an unknown id", async () => {
    const file = join(tempDir(), "identities.json");
    // A file from before ids existed: its entry still loads, lists and can be removed.
    const legacyHash = hashToken("tkv_legacy");
    writeFileSync(file, JSON.stringify({ identities: [{ name: "old", tokenSha256: legacyHash, store: "legacy", roles: ["read"] }] }));
    chmodSync(file, 0o640);
    const alice = await addTokenWithCli(file, "alice", ["write"], "alice-node");
    const ops = await addTokenWithCli(file, "ops", ["admin", "read"], "ops");

    const listed = expectOk(await runCli(["token", "list", "--tokens-file", file]));
    for (const secret of [alice, ops, legacyHash, hashToken(alice), hashToken(ops)]) expect(listed).not.toContain(secret);
    const entries = listed.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries).toEqual([
      { id: expect.stringMatching(/^[0-9a-f]{16}$/), name: "old", store: "legacy", roles: ["read"] },
      { id: expect.stringMatching(/^[0-9a-f]{16}$/), name: "alice-node", store: "alice", roles: ["write"], created: expect.any(String) },
      { id: expect.stringMatching(/^[0-9a-f]{16}$/), name: "ops", store: "ops", roles: ["admin", "read"], created: expect.any(String) },
    ]);
    // The legacy entry's id is stable from one listing to the next.
    expect(expectOk(await runCli(["token", "list", "--tokens-file", file]))).toBe(listed);

    const [legacy, aliceEntry] = entries as Array<{ id: string }>;
    expect(expectOk(await runCli(["token", "rm", "--tokens-file", file, aliceEntry!.id]))).toContain(`removed ${aliceEntry!.id}`);
    expect(expectOk(await runCli(["token", "rm", "--tokens-file", file, legacy!.id]))).toContain("store legacy");
    const remaining = JSON.parse(readFileSync(file, "utf8")) as { identities: Array<{ store: string; tokenSha256: string }> };
    expect(remaining.identities.map((entry) => [entry.store, entry.tokenSha256])).toEqual([["ops", hashToken(ops)]]);
    expect(statSync(file).mode & 0o777).toBe(0o640);

    const before = readFileSync(file, "utf8");
    expectOneLineError(await runCli(["token", "rm", "--tokens-file", file, "nosuchid"]), 1, /has no entry with id "nosuchid".*token list/);
    expect(readFileSync(file, "utf8")).toBe(before);
  });
});

describe("against a server with tokens", () => {
  let server: ServerProcess;
  const tokenFiles: Record<string, string> = {};
  /** `tierkv --server … --token-file <who's> ...args`. */
  const as = (who: string, args: string[], input?: Uint8Array): Promise<CliResult> =>
    runCli(["--server", server.address, "--token-file", tokenFiles[who]!, ...args], input);

  beforeAll(async () => {
    const dir = tempDir();
    const identities = join(dir, "identities.json");
    const roles: Record<string, [string, string[]]> = {
      alice: ["alice", ["write"]],
      bob: ["bob", ["write"]],
      ops: ["ops", ["admin"]],
      mirror: ["mirror", ["replicate"]],
    };
    for (const [who, [store, granted]] of Object.entries(roles)) {
      tokenFiles[who] = writeTokenFile(dir, `${who}.token`, await addTokenWithCli(identities, store, granted, who));
    }
    server = await spawnServer(["--primary", "memory:", "--auth", "tokens", "--tokens-file", identities]);
  });
  afterAll(async () => {
    await server?.kill("SIGKILL");
  });

  it("--store lets replicate read and write another store and admin read it; write may not name it (PERMISSION_DENIED, exit 1)", async () => {
    expectOk(await as("alice", ["put", "mon/chan_1"], Buffer.from("alice's")));
    // replicate writes into alice's store; alice sees it as her own key.
    expectOk(await as("mirror", ["put", "--store", "alice", "mon/chan_2"], Buffer.from("mirrored")));
    expect(expectOk(await as("alice", ["get", "mon/chan_2"]))).toBe("mirrored");
    expect(expectOk(await as("mirror", ["get", "--store", "alice", "mon/chan_1"]))).toBe("alice's");
    expect(expectOk(await as("ops", ["get", "--store", "alice", "mon/chan_1"]))).toBe("alice's");
    expect(expectOk(await as("ops", ["ls", "--store", "alice", "mon"]))).toBe("chan_2\nchan_1\n");

    expectOneLineError(await as("bob", ["get", "--store", "alice", "mon/chan_1"]), 1, /PERMISSION_DENIED|bob may not read another store/);
    expectOneLineError(await as("bob", ["ls", "--store", "alice", "mon"]), 1, /bob may not read another store/);
    expectOneLineError(await as("bob", ["put", "--store", "alice", "mon/x"], Buffer.from("x")), 1, /bob may not write another store/);
    expectOneLineError(await as("bob", ["rm", "--store", "alice", "mon/chan_1"]), 1, /bob may not write another store/);
    expectOneLineError(await as("ops", ["rm", "--store", "alice", "mon/chan_1"]), 1, /ops may not remove/);
    expectOk(await as("mirror", ["rm", "--store", "alice", "mon/chan_2"]));
    expectOneLineError(await as("alice", ["get", "mon/chan_2"]), 1, /no such key/);
    // bob's own store never saw any of it.
    expect(expectOk(await as("bob", ["ls", "mon"]))).toBe("");
  });

  it("ls --namespaces lists primary namespaces, or the secondary ones under one, each once, across pages", async () => {
    const paths = ["root_key", "a/k1", "a/x/k1", "a/x/k2", "a/y/k1", "b/z/k", "bb/k", "c/q/k1", "c/q/k2", "c/r/k"];
    for (const path of paths) expectOk(await as("bob", ["put", path], Buffer.from(path)));
    expect(expectOk(await as("bob", ["ls", "--namespaces", "--page-size", "2"]))).toBe("a\nb\nbb\nc\n");
    expect(expectOk(await as("bob", ["ls", "--namespaces", "a", "--page-size", "1"]))).toBe("x\ny\n");
    expect(expectOk(await as("bob", ["ls", "--namespaces", "c"]))).toBe("q\nr\n");
    expect(expectOk(await as("bob", ["ls", "--namespaces", "bb"]))).toBe("");
    expect(expectOk(await as("bob", ["ls", "--namespaces", "nothing"]))).toBe("");
    // Another store's namespaces, for a role that may read it.
    expect(expectOk(await as("ops", ["ls", "--namespaces", "--store", "bob"]))).toBe("a\nb\nbb\nc\n");
    expectOneLineError(await as("bob", ["ls", "--namespaces", "a/x"]), 2, /name a primary namespace only/);
  });
});

describe("exit codes", () => {
  it("2 for usage and settings errors, each one line", async () => {
    const missing = join(tempDir(), "no-such.token");
    const cases: [string[], RegExp][] = [
      [["get"], /missing required argument 'path'/],
      [["put"], /missing required argument 'path'/],
      [["token", "rm", "--tokens-file", "f"], /missing required argument 'id'/],
      [["token", "add", "--store", "s"], /required option '--tokens-file <file>' not specified/],
      [["ls", "--no-such-flag"], /unknown option '--no-such-flag'/],
      [["--no-such-flag", "ls"], /unknown option '--no-such-flag'/],
      [["no-such-command"], /unknown command 'no-such-command'/],
      [["serve", "--primary", "redis://localhost:6379"], /--primary: store URI "redis:\/\/localhost:6379" has an unknown scheme/],
      [["--token-file", missing, "get", "k"], new RegExp(`--token-file ${missing}: cannot read it \\(ENOENT\\)`)],
      // A file a store URI names, found missing only when serve opens the tier: still a settings error.
      [["serve", "--listen", "127.0.0.1:0", "--primary", "memory:", "--backup", `grpc://127.0.0.1:1?token_file=${missing}`],
        new RegExp(`--backup: token_file ${missing} \\(for 127\\.0\\.0\\.1:1\\): cannot read it`)],
      [["get", "a/b/c/d"], /4 parts/],
    ];
    for (const [args, pattern] of cases) expectOneLineError(await runCli(args, undefined, { TIERKV_TOKEN: "" }), 2, pattern);
  });

  it("1 for a failed call", async () => {
    // Nothing listens on port 1.
    expectOneLineError(await runCli(["--server", "127.0.0.1:1", "--timeout", "2000", "get", "k"]), 1, /127\.0\.0\.1:1/);
  });
});
