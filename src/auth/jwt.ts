//! JWT bearer credentials (`--auth jwt`), verified with `jose` against a JWKS file or a PEM public
//! key: signature (RS256, ES256, EdDSA), `exp` required and checked with vss-server's leeway,
//! `nbf` when present, `iss`/`aud` when set.

import { readFileSync } from "node:fs";
import { createLocalJWKSet, importSPKI, jwtVerify, type JWTVerifyGetKey, type KeyObject, type CryptoKey } from "jose";
import { JWT_LEEWAY_SECONDS } from "../limits.js";
import { StoreError } from "../store/errors.js";
import { ROLES, type Principal, type Role } from "./principal.js";

export interface JwtSettings {
  /** A JWKS document (`{"keys": [...]}`). */
  readonly jwksFile?: string;
  /** A PEM (SPKI) public key. */
  readonly publicKeyFile?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** The claim that names the store (default `sub`). */
  readonly storeClaim: string;
  /** Accept tokens without `exp` (opt-in: a token that never expires cannot be taken back). */
  readonly allowNoExp?: boolean;
}

const ALGORITHMS = ["RS256", "ES256", "EdDSA"];

type VerificationKey = JWTVerifyGetKey | KeyObject | CryptoKey;

export class JwtVerifier {
  private constructor(
    private readonly settings: JwtSettings,
    private readonly key: VerificationKey,
  ) {}

  /** Reads the key material; throws an Error naming the file when it cannot be used. */
  static async load(settings: JwtSettings): Promise<JwtVerifier> {
    if ((settings.jwksFile === undefined) === (settings.publicKeyFile === undefined)) {
      throw new Error("--auth jwt needs exactly one of --jwt-jwks-file and --jwt-public-key-file");
    }
    if (settings.jwksFile !== undefined) {
      const path = settings.jwksFile;
      try {
        return new JwtVerifier(settings, createLocalJWKSet(JSON.parse(readFileSync(path, "utf8")) as Parameters<typeof createLocalJWKSet>[0]));
      } catch (error) {
        throw new Error(`--jwt-jwks-file ${path}: ${(error as Error).message}`);
      }
    }
    const path = settings.publicKeyFile!;
    const pem = readFileSync(path, "utf8");
    const failures: string[] = [];
    // A PEM says nothing of its algorithm: take the first that imports.
    for (const algorithm of ALGORITHMS) {
      try {
        return new JwtVerifier(settings, await importSPKI(pem, algorithm));
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    throw new Error(`--jwt-public-key-file ${path}: not an RSA, P-256 or Ed25519 public key (${failures.at(-1)})`);
  }

  /** The principal a token names; throws `unauthenticated` (with a reason, never the token) otherwise. */
  async verify(token: string): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      const options = {
        algorithms: ALGORITHMS,
        // vss-server's leeway, with `exp` required, as its jsonwebtoken defaults; `nbf` is checked
        // too when present (vss-server ignores it): a token not yet valid is refused.
        clockTolerance: JWT_LEEWAY_SECONDS,
        ...(!this.settings.allowNoExp && { requiredClaims: ["exp"] }),
        ...(this.settings.issuer !== undefined && { issuer: this.settings.issuer }),
        ...(this.settings.audience !== undefined && { audience: this.settings.audience }),
      };
      payload = (await jwtVerify(token, this.key, options)).payload;
    } catch (error) {
      const code = (error as { code?: string }).code ?? "";
      const claim = error as { claim?: string; reason?: string };
      const reason =
        code === "ERR_JWT_EXPIRED"
          ? "the token has expired"
          : code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && claim.claim === "exp" && claim.reason === "missing"
            ? "the token has no exp claim (tokens must expire)"
            : code === "ERR_JWT_CLAIM_VALIDATION_FAILED"
            ? `the token's ${(error as { claim?: string }).claim ?? "claims"} claim is not accepted`
            : "the token's signature or format is not valid";
      throw new StoreError("unauthenticated", `invalid credentials: ${reason}`);
    }
    const store = payload[this.settings.storeClaim];
    if (typeof store !== "string" || store === "") {
      throw new StoreError("unauthenticated", `invalid credentials: the token has no "${this.settings.storeClaim}" claim naming a store`);
    }
    return { name: `jwt:${typeof payload["sub"] === "string" ? payload["sub"] : store}`, storeId: store, roles: rolesOf(payload["roles"]) };
  }
}

/** `roles` as a list or a space-separated string; `write` when absent. Unknown roles are ignored. */
function rolesOf(claim: unknown): Set<Role> {
  const names = Array.isArray(claim) ? claim : typeof claim === "string" ? claim.split(" ") : ["write"];
  return new Set(names.filter((name): name is Role => (ROLES as readonly unknown[]).includes(name)));
}
