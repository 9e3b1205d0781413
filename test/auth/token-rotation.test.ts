// Rotating a chained instance's replicate credential without a restart (real processes): B takes
// a new token and drops the old one (its identities file, SIGHUP); A's writes then fail at B until
// A's `token_file=` holds the new token and A gets SIGHUP too.
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { addTokenWithCli, failure, waitForLog, writeTokenFile } from "../support/auth.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

const at = (key: string): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "", key });
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

it("SIGHUP makes a chained instance send the rotated token from its token_file", async () => {
  const dir = tempDir();
  const identitiesB = join(dir, "b-identities.json");
  const oldToken = await addTokenWithCli(identitiesB, "instance-a", ["replicate"], "instance A");
  const tokenFile = writeTokenFile(dir, "a-to-b.token", oldToken);
  // B's next identities: a new replicate token in place of the old one, and a reader for the checks.
  const rotatedIdentities = join(dir, "b-identities.next.json");
  const reader = await addTokenWithCli(rotatedIdentities, "default", ["read"], "reader");
  const newToken = await addTokenWithCli(rotatedIdentities, "instance-a", ["replicate"], "instance A");

  const b: ServerProcess = await spawnServer(["--primary", `sqlite:${join(dir, "b.db")}`, "--auth", "tokens", "--tokens-file", identitiesB]);
  cleanup.push(() => b.kill());
  const a: ServerProcess = await spawnServer(["--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `grpc://${b.address}?token_file=${tokenFile}`]);
  cleanup.push(() => a.kill());
  const viaA = new TierkvClient({ address: a.address, timeoutMs: 10_000 });
  cleanup.push(() => viaA.close());

  expect(await viaA.write(at("before"), Buffer.from("old token"))).toBe("applied");

  // B rotates: the old replicate token stops working there.
  copyFileSync(rotatedIdentities, identitiesB);
  b.child.kill("SIGHUP");
  await waitForLog(b, (entry) => entry["msg"] === "credentials reloaded");
  // The caller's own credentials at A are fine: A answers UNAVAILABLE, naming the tier that refused A.
  const refused = await failure(viaA.write(at("between"), Buffer.from("refused by B")));
  expect(refused.code).toBe("unavailable");
  expect(refused.message).toMatch(/the backup tier refused this server's credentials \(unauthenticated\); the primary tier applied it/);

  // A reads its token file again on SIGHUP.
  writeTokenFile(dir, "a-to-b.token", newToken);
  a.child.kill("SIGHUP");
  await waitForLog(a, (entry) => entry["msg"] === "chained tier's token reloaded");
  expect(await viaA.write(at("after"), Buffer.from("new token"))).toBe("applied");

  const atB = new TierkvClient({ address: b.address, bearerToken: reader, timeoutMs: 10_000 });
  cleanup.push(() => atB.close());
  expect(text(await atB.read(at("before")))).toBe("old token");
  expect(text(await atB.read(at("after")))).toBe("new token");
});
