// A crash between the primary's commit and the backup's answer leaves no silent difference
// (contract §4): the primary recorded the mutation as owed in the same commit, and the next
// instance replays it. Real processes, a real SIGSTOP of the backup and a real SIGKILL of A.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { spawnServer } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

const KEY: KeyRef = { primaryNamespace: "monitors", secondaryNamespace: "", key: "chan_1" };

it("replays to the backup a write whose primary commit survived a kill -9 of A while the backup hung", async () => {
  const dir = tempDir();
  const startB = (listen = "127.0.0.1:0") => spawnServer(["--primary", `sqlite:${join(dir, "b.db")}`, "--listen", listen]);
  const b = await startB();
  cleanup.push(() => b.kill("SIGKILL"));
  const startA = () => spawnServer(["--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `grpc://${b.address}`]);
  const a = await startA();
  cleanup.push(() => a.kill("SIGKILL"));
  const viaA = new TierkvClient({ address: a.address, timeoutMs: 10_000 });
  cleanup.push(() => viaA.close());
  await viaA.write({ ...KEY, key: "warm_up" }, Buffer.from("w")); // both links are up

  b.child.kill("SIGSTOP");
  const pending = viaA.write(KEY, Buffer.from("in flight at the crash")).catch((error: unknown) => error);
  // Wait until A's primary has committed it (reads do not wait for the key's turn); B hangs.
  const committed = Date.now() + 10_000;
  while (Date.now() < committed && (await viaA.read(KEY).catch(() => undefined)) === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await a.kill("SIGKILL");
  expect(await pending).toMatchObject({ code: "unavailable" });
  // B dies too, before reading the request its socket buffered: it never applies it.
  await b.kill("SIGKILL");
  const newB = await startB(b.address);
  cleanup.push(() => newB.kill());

  const viaB = new TierkvClient({ address: b.address });
  cleanup.push(() => viaB.close());
  expect(await viaB.read(KEY).catch((error: { code: string }) => error.code)).toBe("not-found");

  const restarted = await startA();
  cleanup.push(() => restarted.kill());
  const deadline = Date.now() + 10_000;
  let found: string | undefined;
  while (found === undefined && Date.now() < deadline) {
    found = await viaB.read(KEY).then((value) => Buffer.from(value).toString(), () => undefined);
    if (found === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(found).toBe("in flight at the crash");
});
