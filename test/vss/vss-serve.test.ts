// `tierkv serve --vss-listen`: the listener starts and stops with the gRPC server.

import { createServer, type AddressInfo, type Server } from "node:net";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { describe, expect, it } from "vitest";
import { runCli, spawnServer } from "../support/process.js";
import { signatureHeader, text, VssTestClient } from "./vss-harness.js";

describe("tierkv serve --vss-listen", () => {
  it("serves VSS beside gRPC and stops with it on SIGTERM", async () => {
    const server = await spawnServer(["--primary", "memory:", "--vss-listen", "127.0.0.1:0"]);
    try {
      const address = server.listening["vss"] as string;
      expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
      const c = new VssTestClient(`http://${address}/vss`, "wallet");
      await c.put([["k", "v", 0]], 0);
      expect(text((await c.get("k")).value)).toBe("v");
    } finally {
      expect(await server.kill("SIGTERM")).toEqual({ code: 0, signal: null });
    }
  });

  it("is off by default", async () => {
    const server = await spawnServer(["--primary", "memory:"]);
    try {
      expect(server.listening["vss"]).toBeUndefined();
    } finally {
      await server.kill("SIGTERM");
    }
  });

  it("with --auth sigs, accepts LDK Node's signature header", async () => {
    const server = await spawnServer(["--primary", "memory:", "--vss-listen", "127.0.0.1:0", "--auth", "sigs"]);
    try {
      const secretKey = secp256k1.utils.randomSecretKey();
      const url = `http://${server.listening["vss"] as string}/vss`;
      const c = new VssTestClient(url, "wallet", () => ({ authorization: signatureHeader(secretKey) }));
      await c.put([["k", "v", -1]]);
      expect((await c.get("k")).version).toBe(1n);
      await expect(new VssTestClient(url, "wallet").get("k")).rejects.toMatchObject({ status: 401 });
    } finally {
      await server.kill("SIGTERM");
    }
  });

  it("a VSS address that cannot be bound fails the start, and the process exits", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      await expect(spawnServer(["--primary", "memory:", "--vss-listen", `127.0.0.1:${port}`])).rejects.toThrow(/exited/);
    } finally {
      blocker.close();
    }
  });

  it("refuses --auth none on a non-loopback VSS address", async () => {
    const result = await runCli(["serve", "--primary", "memory:", "--vss-listen", "0.0.0.0:0"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr.toString()).toContain("--auth none on 0.0.0.0:0");
  });
});
