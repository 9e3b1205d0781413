// JWT bearer credentials (`--auth jwt`) end to end through an in-process gRPC server: tokens signed
// with ES256, RS256 and EdDSA keys from a JWKS file (or a PEM public key) land in the store their
// `sub` names; expired, not-yet-valid, wrongly signed, wrong-issuer, wrong-audience and store-less
// tokens are UNAUTHENTICATED and change nothing.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWTPayload } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Authenticator, type AuthSettings } from "../../src/auth/authenticator.js";
import { TierkvClient } from "../../src/client/client.js";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { startServer, type RunningServer } from "../../src/server/server.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { KeyRef, KeyVersion } from "../../src/store/types.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { allKeys, expectCode, paths } from "../support/auth.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const ISSUER = "https://issuer.example";
const AUDIENCE = "tierkv";
const ALGORITHMS = ["ES256", "RS256", "EdDSA"] as const;
type Algorithm = (typeof ALGORITHMS)[number];

interface KeyPair {
  readonly alg: Algorithm;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

const now = (): number => Math.floor(Date.now() / 1000);
const key = (name: string): KeyRef => ({ primaryNamespace: "jwt", secondaryNamespace: "", key: name });
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

async function makeKey(alg: Algorithm, kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, publicKey };
}

interface SignOptions {
  readonly header?: Record<string, unknown>;
  readonly iss?: string | null;
  readonly aud?: string | null;
  readonly exp?: number | null;
}

/** A token signed by `pair` (kid in the header), with issuer, audience and a 5-minute expiry unless overridden. */
function sign(pair: KeyPair, claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: pair.alg, kid: pair.kid, ...options.header }).setIssuedAt();
  if (options.iss !== null) jwt.setIssuer(options.iss ?? ISSUER);
  if (options.aud !== null) jwt.setAudience(options.aud ?? AUDIENCE);
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? now() + 300);
  return jwt.sign(pair.privateKey);
}

interface JwtServer {
  readonly tiers: TierStore;
  readonly server: RunningServer;
  client(token: string): TierkvClient;
  /** Every stored key of every store, read in-process (no credentials involved). */
  everything(): Promise<KeyVersion[]>;
  close(): Promise<void>;
}

async function startJwtServer(jwt: AuthSettings["jwt"]): Promise<JwtServer> {
  const authenticator = await Authenticator.open({ modes: ["jwt"], jwt }, silentLogger());
  const tiers = new TierStore({ primary: new MemoryStore() });
  const server = await startServer({
    listen: "127.0.0.1:0",
    store: tiers,
    admin: tiers,
    limits: DEFAULT_LIMITS,
    logger: silentLogger(),
    authenticate: authenticator.authenticate,
  });
  const clients: TierkvClient[] = [];
  return {
    tiers,
    server,
    client(token) {
      const made = new TierkvClient({ address: server.address, bearerToken: token, timeoutMs: 10_000 });
      clients.push(made);
      return made;
    },
    everything: () => allKeys(tiers, { allStores: true }, 100),
    async close() {
      for (const made of clients) await made.close();
      await server.shutdown(1_000);
      await tiers.close();
    },
  };
}

let dir: string;
const keys = {} as Record<Algorithm, KeyPair>;
/** Same algorithms and kids as `keys`, but keys the server does not know. */
const impostors = {} as Record<Algorithm, KeyPair>;
let jwks: JwtServer;

beforeAll(async () => {
  dir = tempDir();
  for (const alg of ALGORITHMS) {
    keys[alg] = await makeKey(alg, `key-${alg}`);
    impostors[alg] = await makeKey(alg, `key-${alg}`);
  }
  const jwksFile = join(dir, "jwks.json");
  const published = await Promise.all(
    ALGORITHMS.map(async (alg) => ({ ...(await exportJWK(keys[alg].publicKey)), kid: keys[alg].kid, alg, use: "sig" })),
  );
  writeFileSync(jwksFile, JSON.stringify({ keys: published }));
  jwks = await startJwtServer({ jwksFile, storeClaim: "sub", issuer: ISSUER, audience: AUDIENCE });
});

afterAll(async () => {
  await jwks?.close();
  removeTempDirs();
});

describe("a JWKS file", () => {
  for (const alg of ALGORITHMS) {
    it(`accepts a valid ${alg} token and writes into the store its sub names`, async () => {
      const alice = jwks.client(await sign(keys[alg], { sub: "alice", roles: ["write"] }));
      expect(await alice.write(key(`by-${alg}`), Buffer.from(`written with ${alg}`))).toBe("applied");
      expect(text(await alice.read(key(`by-${alg}`)))).toBe(`written with ${alg}`);
      expect(text(await jwks.tiers.read({ ...key(`by-${alg}`), storeId: "alice" }))).toBe(`written with ${alg}`);
      await expectCode(jwks.tiers.read(key(`by-${alg}`)), "not-found"); // not in the default store
    });
  }

  it("keeps tenants apart: bob's token sees none of alice's keys and cannot name her store", async () => {
    const alice = jwks.client(await sign(keys.ES256, { sub: "alice", roles: ["write"] }));
    const bob = jwks.client(await sign(keys.EdDSA, { sub: "bob", roles: "write" }));
    await alice.write(key("shared"), Buffer.from("alice's"));
    await bob.write(key("shared"), Buffer.from("bob's"));
    expect(text(await alice.read(key("shared")))).toBe("alice's");
    expect(text(await bob.read(key("shared")))).toBe("bob's");
    await expectCode(bob.read({ ...key("shared"), storeId: "alice" }), "permission-denied");
    expect(paths(await allKeys(bob))).toEqual(["bob/jwt//shared"]);
  });

  it("takes roles from the token: a read token cannot write", async () => {
    const writer = jwks.client(await sign(keys.RS256, { sub: "carol" })); // no roles claim: write
    await writer.write(key("c"), Buffer.from("carol"));
    const reader = jwks.client(await sign(keys.RS256, { sub: "carol", roles: ["read"] }));
    expect(text(await reader.read(key("c")))).toBe("carol");
    await expectCode(reader.write(key("c"), Buffer.from("changed")), "permission-denied");
    const nobody = jwks.client(await sign(keys.RS256, { sub: "carol", roles: ["superuser"] }));
    await expectCode(nobody.read(key("c")), "permission-denied");
    expect(text(await jwks.tiers.read({ ...key("c"), storeId: "carol" }))).toBe("carol");
  });

  it("honours vss-server's 60 s clock leeway, no more", async () => {
    const lenient = jwks.client(await sign(keys.ES256, { sub: "alice", roles: ["write"] }, { exp: now() - 50 }));
    expect(await lenient.write(key("leeway"), Buffer.from("just expired"))).toBe("applied");
    const early = jwks.client(await sign(keys.ES256, { sub: "alice", roles: ["write"], nbf: now() + 50 }));
    expect(text(await early.read(key("leeway")))).toBe("just expired");
  });

  describe("refuses, changing nothing", () => {
    let before: KeyVersion[];
    beforeAll(async () => {
      // something of alice's to overwrite, so a wrongly accepted write would show
      await jwks.client(await sign(keys.ES256, { sub: "alice" })).write(key("target"), Buffer.from("original"));
    });
    afterEach(async () => {
      expect(await jwks.everything()).toEqual(before);
      expect(text(await jwks.tiers.read({ ...key("target"), storeId: "alice" }))).toBe("original");
    });

    const refusals: Array<[string, () => Promise<string>, RegExp]> = [
      ["an expired token (beyond the leeway)", () => sign(keys.ES256, { sub: "alice" }, { exp: now() - 120 }), /expired/],
      ["a token without exp (vss-server requires it)", () => sign(keys.ES256, { sub: "alice" }, { exp: null }), /no exp claim/],
      ["a token not valid yet (beyond the leeway)", () => sign(keys.ES256, { sub: "alice", nbf: now() + 120 }), /nbf/],
      ["a token signed by another key under a known kid", () => sign(impostors.ES256, { sub: "alice" }), /signature/],
      ["an RS256 token signed by another key", () => sign(impostors.RS256, { sub: "alice" }), /signature/],
      ["an EdDSA token signed by another key", () => sign(impostors.EdDSA, { sub: "alice" }), /signature/],
      ["a token whose kid is unknown", () => sign({ ...impostors.ES256, kid: "unknown" }, { sub: "alice" }), /signature/],
      ["a token of another issuer", () => sign(keys.ES256, { sub: "alice" }, { iss: "https://evil.example" }), /iss/],
      ["a token without an issuer", () => sign(keys.ES256, { sub: "alice" }, { iss: null }), /iss/],
      ["a token for another audience", () => sign(keys.ES256, { sub: "alice" }, { aud: "someone-else" }), /aud/],
      ["a token without sub", () => sign(keys.ES256, { roles: ["write"] }), /"sub" claim/],
      ["a token with an empty sub", () => sign(keys.ES256, { sub: "" }), /"sub" claim/],
      ["an unsecured token (alg none)", async () => new UnsecuredJWT({ sub: "alice" }).setIssuer(ISSUER).setAudience(AUDIENCE).encode(), /signature/],
      [
        "an HS256 token",
        () =>
          new SignJWT({ sub: "alice" })
            .setProtectedHeader({ alg: "HS256", kid: keys.ES256.kid })
            .setIssuer(ISSUER)
            .setAudience(AUDIENCE)
            .sign(new TextEncoder().encode("a shared secret nobody configured")),
        /signature/,
      ],
      ["a token with its payload altered", async () => {
        const [header, , signature] = (await sign(keys.ES256, { sub: "bob" })).split(".");
        const forged = Buffer.from(JSON.stringify({ sub: "alice", iss: ISSUER, aud: AUDIENCE, exp: now() + 300 })).toString("base64url");
        return `${header}.${forged}.${signature}`;
      }, /signature/],
      ["a string that is not a JWT", async () => "not.a.jwt", /signature or format/],
    ];
    for (const [what, make, reason] of refusals) {
      it(`${what}: UNAUTHENTICATED`, async () => {
        before = await jwks.everything();
        const caller = jwks.client(await make());
        expect(await expectCode(caller.write(key("target"), Buffer.from("overwritten")), "unauthenticated")).toMatch(reason);
        await expectCode(caller.remove(key("target")), "unauthenticated");
        await expectCode(caller.read(key("target")), "unauthenticated");
        await expectCode(caller.txn({ checks: [], operations: [{ ...key("target"), kind: "remove" }] }), "unauthenticated");
      });
    }

    it("a bearer token that is no JWT at all: UNAUTHENTICATED", async () => {
      before = await jwks.everything();
      const caller = jwks.client("tkv_looks_like_an_opaque_token");
      expect(await expectCode(caller.write(key("target"), Buffer.from("overwritten")), "unauthenticated")).toMatch(/unknown token/);
    });
  });
});

describe("a PEM public key file", () => {
  for (const alg of ALGORITHMS) {
    it(`verifies ${alg} tokens against it and refuses other keys`, async () => {
      const publicKeyFile = join(dir, `${alg}.pem`);
      writeFileSync(publicKeyFile, await exportSPKI(keys[alg].publicKey));
      const pem = await startJwtServer({ publicKeyFile, storeClaim: "sub", issuer: ISSUER, audience: AUDIENCE });
      try {
        const alice = pem.client(await sign(keys[alg], { sub: "alice", roles: ["write"] }));
        expect(await alice.write(key("pem"), Buffer.from(alg))).toBe("applied");
        const others = ALGORITHMS.filter((other) => other !== alg).map((other) => keys[other]);
        for (const signer of [impostors[alg], ...others]) {
          const caller = pem.client(await sign(signer, { sub: "alice", roles: ["write"] }));
          await expectCode(caller.write(key("pem"), Buffer.from("overwritten")), "unauthenticated");
        }
        expect(paths(await pem.everything())).toEqual(["alice/jwt//pem"]);
        expect(text(await pem.tiers.read({ ...key("pem"), storeId: "alice" }))).toBe(alg);
      } finally {
        await pem.close();
      }
    });
  }

  it("a file that holds no usable public key is refused at start, naming the file", async () => {
    const publicKeyFile = join(dir, "not-a-key.pem");
    writeFileSync(publicKeyFile, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    const error = await Authenticator.open({ modes: ["jwt"], jwt: { publicKeyFile, storeClaim: "sub" } }, silentLogger()).catch((e: unknown) => e);
    expect((error as Error).message).toContain(publicKeyFile);
  });
});

it("a custom store claim names the store; sub only names the caller", async () => {
  const pair = keys.EdDSA;
  const jwksFile = join(dir, "jwks-one.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: pair.kid, alg: pair.alg }] }));
  const authenticator = await Authenticator.open({ modes: ["jwt"], jwt: { jwksFile, storeClaim: "tenant" } }, silentLogger());
  const principal = await authenticator.authenticate({ authorization: `Bearer ${await sign(pair, { sub: "user-7", tenant: "acme", roles: "read write" })}` });
  expect(principal.storeId).toBe("acme");
  expect(principal.name).toBe("jwt:user-7");
  expect([...principal.roles].sort()).toEqual(["read", "write"]);
  const withoutTenant = authenticator.authenticate({ authorization: `Bearer ${await sign(pair, { sub: "user-7" })}` });
  await expectCode(withoutTenant, "unauthenticated");
});

it("--jwt-allow-no-exp (allowNoExp) accepts a token without exp; without it the token is refused", async () => {
  const pair = keys.ES256;
  const jwksFile = join(dir, "jwks-noexp.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: pair.kid, alg: pair.alg }] }));
  const token = await sign(pair, { sub: "eternal" }, { exp: null, iss: null, aud: null });
  const strict = await Authenticator.open({ modes: ["jwt"], jwt: { jwksFile, storeClaim: "sub" } }, silentLogger());
  await expectCode(strict.authenticate({ authorization: `Bearer ${token}` }), "unauthenticated");
  const lenient = await Authenticator.open({ modes: ["jwt"], jwt: { jwksFile, storeClaim: "sub", allowNoExp: true } }, silentLogger());
  expect((await lenient.authenticate({ authorization: `Bearer ${token}` })).storeId).toBe("eternal");
});
