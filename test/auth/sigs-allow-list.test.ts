// The allow-list of VSS signing keys (--sigs-allow-file): its file's errors name the entry; with it,
// `--auth sigs` accepts only the keys it lists, each with its name and quota (else the default
// quota), and a reload picks up an edited file or keeps the previous list.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { afterAll, describe, expect, it } from "vitest";
import { Authenticator } from "../../src/auth/authenticator.js";
import { SigsAllowList } from "../../src/auth/sigs-allow-list.js";
import { silentLogger } from "../../src/log.js";
import { signatureHeader } from "../vss/vss-harness.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterAll(() => removeTempDirs());

const dir = tempDir();
const write = (content: unknown, name = "keys.json"): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
};
const newKey = (): { secret: Uint8Array; hex: string } => {
  const secret = secp256k1.utils.randomSecretKey();
  return { secret, hex: Buffer.from(secp256k1.getPublicKey(secret, true)).toString("hex") };
};

describe("the allow-list file", () => {
  const key = newKey().hex;
  const errors: Array<[string, unknown, RegExp]> = [
    ["an unknown key", { publicKey: key, store: "alice" }, /publicKeys\[1\]: unknown key "store"/],
    ["no public key", { name: "alice" }, /publicKeys\[1\]: "publicKey" must be a compressed secp256k1 public key/],
    ["an uncompressed key", { publicKey: `04${key.slice(2)}` }, /publicKeys\[1\]: "publicKey" must be/],
    ["a short key", { publicKey: key.slice(0, 64) }, /publicKeys\[1\]: "publicKey" must be/],
    ["the same key twice, in capitals", { publicKey: key.toUpperCase() }, /publicKeys\[1\]: the public key .* is listed twice/],
    ["an empty name", { publicKey: newKey().hex, name: "" }, /publicKeys\[1\]: "name" must be a non-empty string/],
    ["a negative quota", { publicKey: newKey().hex, maxStores: -1 }, /publicKeys\[1\]: "maxStores" must be a non-negative whole number/],
    ["an entry that is not an object", key, /publicKeys\[1\]: expected an object/],
  ];
  for (const [what, entry, message] of errors) {
    it(`names the entry with ${what}`, () => {
      const path = write({ publicKeys: [{ publicKey: key }, entry] });
      expect(() => SigsAllowList.load(path)).toThrow(message);
      expect(() => SigsAllowList.load(path)).toThrow(path);
    });
  }

  it("names the file when it is not JSON or not the expected shape", () => {
    const broken = write('{"publicKeys": [', "broken.json");
    expect(() => SigsAllowList.load(broken)).toThrow(broken);
    const list = write([{ publicKey: key }], "list.json");
    expect(() => SigsAllowList.load(list)).toThrow(`${list}: expected {"publicKeys": [...]}`);
  });
});

describe("--auth sigs with an allow-list", () => {
  const listed = newKey();
  const named = newKey();
  const stranger = newKey();
  const defaultQuota = { maxKeys: 100, maxStores: 3 };

  it("needs --auth sigs", async () => {
    await expect(Authenticator.open({ modes: ["tokens"], tokensFile: write({ identities: [] }, "ids.json"), sigsAllowFile: write({ publicKeys: [] }) }, silentLogger())).rejects.toThrow(
      "--sigs-allow-file needs --auth sigs",
    );
  });

  it("accepts the listed keys (the default quota unless an entry has its own), refuses others with a message naming the list", async () => {
    const path = write({ publicKeys: [{ publicKey: listed.hex.toUpperCase() }, { publicKey: named.hex, name: "bob-node", maxKeys: 5, maxStores: 1 }] });
    const auth = await Authenticator.open({ modes: ["sigs"], sigsAllowFile: path, defaultQuota }, silentLogger());
    expect(await auth.authenticate({ authorization: signatureHeader(listed.secret) })).toMatchObject({
      name: `sigs:${listed.hex}`,
      storeId: listed.hex,
      quota: defaultQuota,
    });
    const bob = await auth.authenticate({ authorization: signatureHeader(named.secret) });
    expect(bob).toMatchObject({ name: "bob-node", storeId: named.hex, quota: { maxKeys: 5, maxStores: 1 } });
    expect([...bob.roles].sort()).toEqual(["read", "write"]);
    await expect(auth.authenticate({ authorization: signatureHeader(stranger.secret) })).rejects.toMatchObject({
      code: "unauthenticated",
      message: `invalid credentials: the public key ${stranger.hex} is not on this server's allow-list (--sigs-allow-file)`,
    });
    // A forged header is still refused for its signature first.
    await expect(auth.authenticate({ authorization: listed.hex + signatureHeader(stranger.secret).slice(66) })).rejects.toThrow(/does not verify/);
  });

  it("a reload picks up an edited list; a broken one keeps the previous list", async () => {
    const path = write({ publicKeys: [{ publicKey: listed.hex }] }, "reloaded.json");
    const auth = await Authenticator.open({ modes: ["sigs"], sigsAllowFile: path }, silentLogger());
    await expect(auth.authenticate({ authorization: signatureHeader(stranger.secret) })).rejects.toMatchObject({ code: "unauthenticated" });
    write({ publicKeys: [{ publicKey: listed.hex }, { publicKey: stranger.hex, maxKeys: 7 }] }, "reloaded.json");
    expect(await auth.reload()).toBe(true);
    expect(await auth.authenticate({ authorization: signatureHeader(stranger.secret) })).toMatchObject({ storeId: stranger.hex, quota: { maxKeys: 7 } });
    write("{", "reloaded.json");
    expect(await auth.reload()).toBe(false);
    expect((await auth.authenticate({ authorization: signatureHeader(stranger.secret) })).storeId).toBe(stranger.hex);
  });

  it("without a list, any valid key is its own user with the default quota", async () => {
    const auth = await Authenticator.open({ modes: ["sigs"], defaultQuota }, silentLogger());
    expect(await auth.authenticate({ authorization: signatureHeader(stranger.secret) })).toMatchObject({ storeId: stranger.hex, quota: defaultQuota });
  });
});
