// `--auth sigs`: LDK Node's default VSS signature header, verified by the Authenticator; each
// valid signing key is its own user.

import type { PeerCertificate } from "node:tls";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/vss/v1/vss_pb.js";
import { Authenticator } from "../../src/auth/authenticator.js";
import { silentLogger } from "../../src/log.js";
import { StoreError } from "../../src/store/errors.js";
import { SIGNING_SALT, signatureDigest, verifySignatureHeader } from "../../src/auth/signature-auth.js";
import { vssStoreId } from "../../src/vss/vss-service.js";
import { refused, signatureHeader, startVssHarness, text, VssTestClient, type VssHarness } from "./vss-harness.js";

const DAY = 24 * 60 * 60;
const now = (): number => Math.floor(Date.now() / 1000);
const hex = (data: Uint8Array): string => Buffer.from(data).toString("hex");

describe("the signature header", () => {
  const secretKey = secp256k1.utils.randomSecretKey();
  const publicKey = hex(secp256k1.getPublicKey(secretKey, true));

  it("the salt is vss-server's 64-byte constant", () => {
    expect(SIGNING_SALT.length).toBe(64);
    expect(SIGNING_SALT.toString("hex")).toBe(
      "565353205369676e617475726520417574686f72697a6572205369676e696e672053616c7420436f6e7374616e74" + "2e".repeat(18),
    );
  });

  it("a valid header names its public key (lowercase hex) as the user", () => {
    expect(verifySignatureHeader(signatureHeader(secretKey))).toBe(publicKey);
    const upper = signatureHeader(secretKey).replace(/^[0-9a-f]{194}/, (h) => h.toUpperCase());
    expect(verifySignatureHeader(upper)).toBe(publicKey);
  });

  it("accepts times within a day of the server's clock, refuses those beyond", () => {
    const t = now();
    expect(verifySignatureHeader(signatureHeader(secretKey, t - DAY + 60), t)).toBe(publicKey);
    expect(verifySignatureHeader(signatureHeader(secretKey, t + DAY - 60), t)).toBe(publicKey);
    expect(() => verifySignatureHeader(signatureHeader(secretKey, t - DAY - 60), t)).toThrow(/24 hours/);
    expect(() => verifySignatureHeader(signatureHeader(secretKey, t + DAY + 60), t)).toThrow(/24 hours/);
  });

  it("refuses a high-S signature (malleable), as libsecp256k1 does", () => {
    const t = String(now());
    const key = secp256k1.getPublicKey(secretKey, true);
    const signature = secp256k1.sign(signatureDigest(key, t), secretKey, { prehash: false });
    const n = secp256k1.Point.CURVE().n;
    const high = new secp256k1.Signature(signature.r, n - signature.s).toBytes("compact");
    expect(() => verifySignatureHeader(`${hex(key)}${hex(high)}${t}`)).toThrow(StoreError);
  });

  it("refuses malformed headers", () => {
    const valid = signatureHeader(secretKey);
    for (const header of [valid.slice(0, 194), `${valid}x`, `Bearer ${valid}`, valid.replace(/^../, "zz"), `05${valid.slice(2)}`]) {
      expect(() => verifySignatureHeader(header)).toThrow(StoreError);
    }
  });
});

describe("VSS with --auth sigs", () => {
  let vss: VssHarness;
  const alice = secp256k1.utils.randomSecretKey();
  const bob = secp256k1.utils.randomSecretKey();
  const as = (secretKey: Uint8Array, storeId = "wallet", time?: () => number): VssTestClient =>
    new VssTestClient(vss.url, storeId, () => ({ authorization: signatureHeader(secretKey, time?.()) }));

  beforeAll(async () => {
    const authenticator = await Authenticator.open({ modes: ["sigs"] }, silentLogger());
    vss = await startVssHarness({ authenticate: authenticator.authenticate });
  });
  afterAll(() => vss.close());

  it("accepts a valid header and keeps the user's keys under its public key", async () => {
    await as(alice).put([["k", "alice", 0]], 0);
    expect(text((await as(alice).get("k")).value)).toBe("alice");
    const user = hex(secp256k1.getPublicKey(alice, true));
    const stored = await vss.tiers.readVersioned({ storeId: vssStoreId(user, "wallet"), primaryNamespace: "", secondaryNamespace: "", key: "k" });
    expect(text(stored.value)).toBe("alice");
  });

  it("refuses a missing header with 401", async () => {
    await refused(new VssTestClient(vss.url, "wallet").get("k"), 401, ErrorCode.AUTH_EXCEPTION);
    await refused(new VssTestClient(vss.url, "wallet").put([["k", "v", -1]]), 401, ErrorCode.AUTH_EXCEPTION);
  });

  it("refuses forged headers with 401", async () => {
    const alicesKey = hex(secp256k1.getPublicKey(alice, true));
    // Bob's signature under Alice's name.
    const forged = (): Record<string, string> => ({ authorization: alicesKey + signatureHeader(bob).slice(66) });
    await refused(new VssTestClient(vss.url, "wallet", forged).get("k"), 401, ErrorCode.AUTH_EXCEPTION);
    // A valid header with its time changed after signing.
    const altered = (): Record<string, string> => {
      const header = signatureHeader(alice);
      return { authorization: `${header.slice(0, 194)}${Number(header.slice(194)) - 1}` };
    };
    await refused(new VssTestClient(vss.url, "wallet", altered).get("k"), 401, ErrorCode.AUTH_EXCEPTION);
    // A flipped bit in the signature.
    const flipped = (): Record<string, string> => {
      const header = signatureHeader(alice);
      const digit = header[100] === "0" ? "1" : "0";
      return { authorization: `${header.slice(0, 100)}${digit}${header.slice(101)}` };
    };
    await refused(new VssTestClient(vss.url, "wallet", flipped).get("k"), 401, ErrorCode.AUTH_EXCEPTION);
    // A bearer token is not a signature.
    await refused(new VssTestClient(vss.url, "wallet", () => ({ authorization: "Bearer abc" })).get("k"), 401, ErrorCode.AUTH_EXCEPTION);
  });

  it("refuses stale and far-future headers (beyond 24 h) with 401, accepts a 23 h old one", async () => {
    await refused(as(alice, "wallet", () => now() - DAY - 120).get("k"), 401, ErrorCode.AUTH_EXCEPTION);
    await refused(as(alice, "wallet", () => now() + DAY + 120).get("k"), 401, ErrorCode.AUTH_EXCEPTION);
    expect((await as(alice, "wallet", () => now() - 23 * 3600).get("k")).version).toBe(1n);
  });

  it("two keys are two users: the same store id is isolated", async () => {
    await refused(as(bob).get("k"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    expect((await as(bob).get("global_version")).version).toBe(0n);
    await as(bob).put([["k", "bob", 0]], 0);
    expect(text((await as(alice).get("k")).value)).toBe("alice");
    expect(text((await as(bob).get("k")).value)).toBe("bob");
    expect((await as(bob).listAll()).keys.map((kv) => kv.key)).toEqual(["k"]);
  });
});

describe("the authenticator", () => {
  it("refuses identities whose store id takes the reserved vss: prefix", async () => {
    const mtls = await Authenticator.open({ modes: ["mtls"] }, silentLogger());
    const certificate = (cn: string): PeerCertificate => ({ subject: { CN: cn } }) as unknown as PeerCertificate;
    expect((await mtls.authenticate({ peerCertificate: certificate("alice") })).storeId).toBe("alice");
    await expect(mtls.authenticate({ peerCertificate: certificate("vss:alice:wallet") })).rejects.toThrow(/reserved for VSS stores/);
  });

  it("sigs principals: the public key's store, read and write", async () => {
    const authenticator = await Authenticator.open({ modes: ["sigs"] }, silentLogger());
    const principal = await authenticator.authenticate({ authorization: signatureHeader(secp256k1.utils.randomSecretKey()) });
    expect(principal.storeId).toMatch(/^0[23][0-9a-f]{64}$/);
    expect([...principal.roles].sort()).toEqual(["read", "write"]);
    await expect(authenticator.authenticate({})).rejects.toThrow(/missing credentials/);
  });
});
