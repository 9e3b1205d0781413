// Mutual TLS between instances: A backs up to B over grpcs:// with a CA and a client certificate;
// a client without a certificate is refused; bad remote URIs fail with a clear message.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { StoreError } from "../../src/store/errors.js";
import { openStore } from "../../src/app/open-store.js";
import { makeCertificates } from "../support/certs.js";
import { spawnServer } from "../support/process.js";
import { storedValues } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

it("chains over mutual TLS, and refuses a client without a certificate", async () => {
  const dir = tempDir();
  const certs = makeCertificates(dir);
  const b = await spawnServer([
    "--primary", `sqlite:${join(dir, "b.db")}`,
    "--tls-cert", certs.serverCert,
    "--tls-key", certs.serverKey,
    "--tls-client-ca", certs.ca,
  ]);
  cleanup.push(() => b.kill());
  expect(b.listening["tls"]).toBe(true);
  const backup = `grpcs://${b.address}?ca=${certs.ca}&cert=${certs.clientCert}&key=${certs.clientKey}`;
  const a = await spawnServer(["--primary", `sqlite:${join(dir, "a.db")}`, "--backup", backup]);
  cleanup.push(() => a.kill());

  const client = new TierkvClient({ address: a.address });
  cleanup.push(() => client.close());
  await client.write({ primaryNamespace: "", secondaryNamespace: "", key: "manager" }, Buffer.from("over tls"));

  const withoutCertificate = await openStore(`grpcs://${b.address}?ca=${certs.ca}`);
  cleanup.push(() => withoutCertificate.close());
  const refused = await withoutCertificate.list({ primaryNamespace: "", secondaryNamespace: "" }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(StoreError);
  expect((refused as StoreError).code).toBe("unavailable");

  await b.kill();
  expect(storedValues(join(dir, "b.db")).get("//manager")).toBe("over tls");
});

describe("remote store URIs", () => {
  const bad: Array<[string, RegExp]> = [
    ["grpc://127.0.0.1", /expected grpc:\/\/host:port/],
    ["grpc://127.0.0.1:1/path", /expected grpc:\/\/host:port/],
    ["grpc://127.0.0.1:1?colour=blue", /unknown parameter "colour"/],
    ["grpc://127.0.0.1:1?ca=/etc/hostname", /ca\/cert\/key need grpcs/],
    ["grpcs://127.0.0.1:1?ca=/nonexistent/ca.pem", /cannot read ca file/],
    ["grpcs://127.0.0.1:1?cert=/etc/hostname", /cert and key go together/],
    ["grpc://127.0.0.1:1?timeout_ms=soon", /timeout_ms must be a positive whole number/],
  ];
  for (const [uri, message] of bad) {
    it(`rejects ${uri}`, async () => {
      const error = await openStore(uri).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe("invalid-argument");
      expect((error as StoreError).message).toMatch(message);
    });
  }
});
