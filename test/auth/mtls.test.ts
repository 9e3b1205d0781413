// `--auth mtls` (a real `tierkv serve` process over mutual TLS): the client certificate's subject
// CN names the caller's store; the identities file may give a subject other roles (an admin that
// lists every store). A client without a certificate, or with one from another CA, is refused.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { allKeys, expectCode, issueClientCertificate, makeOtherCa, paths, type ClientCertificate } from "../support/auth.js";
import { makeCertificates, type TestCertificates } from "../support/certs.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { allStoredRows } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

let dir: string;
let dbPath: string;
let certs: TestCertificates;
let server: ServerProcess;
const issued = {} as Record<"alice" | "bob" | "ops" | "auditor" | "untrusted", ClientCertificate>;
const clients: TierkvClient[] = [];

function client(certificate?: ClientCertificate): TierkvClient {
  const credentials = grpc.credentials.createSsl(
    readFileSync(certs.ca),
    certificate === undefined ? null : readFileSync(certificate.key),
    certificate === undefined ? null : readFileSync(certificate.cert),
  );
  const made = new TierkvClient({ address: server.address, credentials, timeoutMs: 10_000 });
  clients.push(made);
  return made;
}

const ref = (key: string): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "", key });
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

beforeAll(async () => {
  dir = tempDir();
  dbPath = join(dir, "tierkv.db");
  certs = makeCertificates(dir);
  for (const name of ["alice", "bob", "ops", "auditor"] as const) issued[name] = issueClientCertificate(dir, name);
  issued.untrusted = issueClientCertificate(dir, "alice", makeOtherCa(dir));
  const identities = join(dir, "identities.json");
  writeFileSync(
    identities,
    JSON.stringify({
      identities: [
        { mtlsSubject: "ops", store: "ops", roles: ["admin"] },
        { mtlsSubject: "auditor", store: "alice", roles: ["read"] },
      ],
    }),
  );
  server = await spawnServer([
    "--primary", `sqlite:${dbPath}`,
    "--tls-cert", certs.serverCert,
    "--tls-key", certs.serverKey,
    "--tls-client-ca", certs.ca,
    "--auth", "mtls",
    "--tokens-file", identities,
  ]);
});

afterAll(async () => {
  for (const made of clients.splice(0)) await made.close();
  if (server !== undefined) await server.kill();
  removeTempDirs();
});

it("a certificate with CN=alice writes into store alice; CN=bob into bob, with the same keys", async () => {
  expect(server.listening["tls"]).toBe(true);
  expect(server.listening["auth"]).toEqual(["mtls"]);
  const alice = client(issued.alice);
  const bob = client(issued.bob);
  for (const key of ["chan_0", "chan_1", "chan_2"]) {
    expect(await alice.write(ref(key), Buffer.from(`alice ${key}`))).toBe("applied");
    expect(await bob.write(ref(key), Buffer.from(`bob ${key}`))).toBe("applied");
  }
  expect(text(await alice.read(ref("chan_1")))).toBe("alice chan_1");
  expect(text(await bob.read(ref("chan_1")))).toBe("bob chan_1");
  expect(paths(await allKeys(alice))).toEqual(["alice/monitors//chan_0", "alice/monitors//chan_1", "alice/monitors//chan_2"]);
  // a certificate's default role is write: its own store only
  await expectCode(alice.read({ ...ref("chan_1"), storeId: "bob" }), "permission-denied");
  await expectCode(alice.write({ ...ref("chan_1"), storeId: "bob" }, Buffer.from("alice was here")), "permission-denied");
  await expectCode(alice.listAllKeys({ allStores: true }), "permission-denied");
});

it("a subject the identities file makes admin lists every store but writes none", async () => {
  const ops = client(issued.ops);
  const everything = await allKeys(ops, { allStores: true }, 2);
  expect(paths(everything)).toEqual([
    "alice/monitors//chan_0", "alice/monitors//chan_1", "alice/monitors//chan_2",
    "bob/monitors//chan_0", "bob/monitors//chan_1", "bob/monitors//chan_2",
  ]);
  expect(text(await ops.read({ ...ref("chan_2"), storeId: "bob" }))).toBe("bob chan_2");
  await expectCode(ops.write({ ...ref("chan_2"), storeId: "bob" }, Buffer.from("ops")), "permission-denied");
  await expectCode(ops.write(ref("chan_2"), Buffer.from("ops")), "permission-denied");
});

it("a subject the identities file binds to another store with the read role reads it and cannot write", async () => {
  const auditor = client(issued.auditor);
  expect(text(await auditor.read(ref("chan_0")))).toBe("alice chan_0");
  await expectCode(auditor.write(ref("chan_0"), Buffer.from("auditor")), "permission-denied");
  await expectCode(auditor.remove(ref("chan_0")), "permission-denied");
});

it("a client without a certificate, or with one of another CA, is refused and changes nothing", async () => {
  const before = await allKeys(client(issued.ops), { allStores: true });
  for (const refused of [client(undefined), client(issued.untrusted)]) {
    await expectCode(refused.write(ref("chan_0"), Buffer.from("intruder")), "unavailable");
    await expectCode(refused.read(ref("chan_0")), "unavailable");
  }
  expect(await allKeys(client(issued.ops), { allStores: true })).toEqual(before);
});

it("the SQLite file holds each certificate's keys under its store", async () => {
  expect(await server.kill()).toEqual({ code: 0, signal: null });
  const rows = allStoredRows(dbPath).map((row) => [row.store_id, row.key, row.value.toString()]);
  expect(rows).toEqual([
    ["alice", "chan_0", "alice chan_0"],
    ["alice", "chan_1", "alice chan_1"],
    ["alice", "chan_2", "alice chan_2"],
    ["bob", "chan_0", "bob chan_0"],
    ["bob", "chan_1", "bob chan_1"],
    ["bob", "chan_2", "bob chan_2"],
  ]);
});
