// One HTTP listener (`--vss-listen`) serves both the VSS protocol and KVStoreService over Connect:
// a real `tierkv serve` process, called with plain fetch as curl would.
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnServer, type ServerProcess } from "../support/process.js";

let server: ServerProcess;
let base: string;

beforeAll(async () => {
  server = await spawnServer(["--primary", "memory:", "--vss-listen", "127.0.0.1:0", "--http-cors-origin", "https://wallet.example"]);
  base = `http://${server.listening["vss"] as string}`;
});
afterAll(async () => {
  await server.kill();
});

it("answers Connect JSON calls on the VSS listener, and VSS paths beside them", async () => {
  const call = (method: string, body: unknown) =>
    fetch(`${base}/tierkv.v1.KVStoreService/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const write = await call("Write", { primaryNamespace: "m", key: "k", value: Buffer.from("over http").toString("base64") });
  expect(await write.json()).toEqual({ applied: true, version: expect.stringMatching(/^[1-9][0-9]*$/) });
  const read = (await (await call("Read", { primaryNamespace: "m", key: "k" })).json()) as { value: string };
  expect(Buffer.from(read.value, "base64").toString()).toBe("over http");

  // A VSS path on the same port still speaks VSS (an empty body is not a valid request: 400).
  const vss = await fetch(`${base}/vss/getObject`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array([0xff]) });
  expect(vss.status).toBe(400);
  expect(vss.headers.get("vss-protocol-version")).not.toBeNull();

  const preflight = await fetch(`${base}/tierkv.v1.KVStoreService/Read`, { method: "OPTIONS", headers: { origin: "https://wallet.example" } });
  expect(preflight.status).toBe(204);
});
