// Debug request logs (contract §6.1): a failed call's line keeps pino's one `msg` and carries
// the error's text under `error`, so JSON readers (jq, log shippers) keep both.
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import { startServer, type RunningServer } from "../../src/server/server.js";
import { MemoryStore } from "../../src/store/memory.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { startVssServer, type RunningVssServer } from "../../src/vss/http-server.js";
import { errorOf } from "../support/store-assertions.js";

/** The raw lines the logger wrote, exactly as they would reach stdout. */
const lines: string[] = [];
const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
const store = new TierStore({ primary: new MemoryStore() });
let server: RunningServer;
let vss: RunningVssServer;
let client: TierkvClient;

beforeAll(async () => {
  server = await startServer({ listen: "127.0.0.1:0", store, limits: DEFAULT_LIMITS, logger });
  vss = await startVssServer({ listen: "127.0.0.1:0", store, limits: DEFAULT_LIMITS, logger });
  client = new TierkvClient({ address: server.address });
});

afterAll(async () => {
  await client.close();
  await server.shutdown(1_000);
  await vss.close(1_000);
  await store.close();
});

/** The one line with `msg`, parsed; it must have that key once only. */
function lineWith(msg: string): Record<string, unknown> {
  const raw = lines.filter((line) => line.includes(`"msg":"${msg}"`));
  expect(raw).toHaveLength(1);
  expect(raw[0]!.match(/"msg":/g)).toHaveLength(1);
  return JSON.parse(raw[0]!) as Record<string, unknown>;
}

it("logs a failed gRPC call with its code and its error text under `error`", async () => {
  expect((await errorOf(client.read({ primaryNamespace: "m", secondaryNamespace: "", key: "absent" }))).code).toBe("not-found");
  const line = lineWith("request");
  expect(line).toMatchObject({ msg: "request", method: "Read", outcome: "failed", code: "not-found", path: "m/absent" });
  expect(line["error"]).toBe("Failed to read m/absent: no such key");
});

// Every surface writes the same `request` line (issue 18); VSS's own "VSS request refused" is gone.
it("logs a refused VSS request with the same line, its error text under `error`", async () => {
  const response = await fetch(`http://${vss.address}/vss/getObject`);
  expect(response.status).toBe(405);
  const raw = lines.filter((line) => line.includes('"surface":"vss"'));
  expect(raw).toHaveLength(1);
  const line = JSON.parse(raw[0]!) as Record<string, unknown>;
  expect(line).toMatchObject({ msg: "request", surface: "vss", method: "getObject", outcome: "failed", code: "invalid-argument" });
  expect(line["error"]).toEqual(expect.stringContaining("POST"));
});
