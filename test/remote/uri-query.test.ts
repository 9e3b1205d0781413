// Store URIs' query parameters are percent-decoded only (src/uri-query.ts): a `+` in a file path is
// a plus, as libpq reads it, not the space URLSearchParams would make of it.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { checkRemoteUri, openRemoteStore } from "../../src/remote/remote-store.js";
import { parsePostgresUri } from "../../src/store/postgres-uri.js";
import { uriQuery } from "../../src/uri-query.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterEach(() => removeTempDirs());

it("keeps a + as a plus, decodes %XX, takes a repeated parameter's first value", () => {
  const query = uriQuery(new URL("grpc://h:1?token_file=/run/a+b/t%20x&ca=%2Fca.pem&ca=/other&flag"));
  expect([...query]).toEqual([
    ["token_file", "/run/a+b/t x"],
    ["ca", "/ca.pem"],
    ["flag", ""],
  ]);
});

it("refuses malformed percent-encoding with a message saying how to write a %", () => {
  expect(() => checkRemoteUri("grpc://h:1?token_file=/a%zz")).toThrow(/parameter "token_file": a "%" must start an escape such as %2B; write a literal % as %25/);
  expect(() => parsePostgresUri("postgres://u@h/db?sslrootcert=%zz", { readFiles: false })).toThrow(/a "%" must start an escape/);
});

it("reads a token file whose path has a + in it", async () => {
  const dir = join(tempDir(), "tok+ens");
  mkdirSync(dir);
  writeFileSync(join(dir, "leader.token"), "secret\n");
  const store = openRemoteStore(`grpc://127.0.0.1:1?token_file=${dir}/leader.token`);
  await store.close();
  expect(() => openRemoteStore(`grpc://127.0.0.1:1?token_file=${dir.replace("+", " ")}/leader.token`)).toThrow(/cannot read it/);
});
