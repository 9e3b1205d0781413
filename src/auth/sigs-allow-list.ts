//! The allow-list of VSS signing keys (`--sigs-allow-file`): with it, `--auth sigs` accepts only
//! the public keys it lists, each its own user with an optional name and quota. JSON:
//!
//!   {"publicKeys": [{"publicKey": "02…66 hex digits", "name": "alice-node", "maxKeys": 1000, "maxBytes": 100000000, "maxStores": 2}]}
//!
//! Read at startup and again on SIGHUP, with the identities file (src/auth/authenticator.ts).

import { readFileSync } from "node:fs";
import type { Principal } from "./principal.js";
import { checkQuotaFields, QUOTA_FIELDS, quotaOf, type QuotaFields } from "./quota-fields.js";

interface AllowedKey extends QuotaFields {
  /** A compressed secp256k1 public key, hex (either case). */
  readonly publicKey: string;
  readonly name?: string;
}

const KNOWN_KEYS = new Set(["publicKey", "name", ...QUOTA_FIELDS]);
const PUBLIC_KEY = /^0[23][0-9a-fA-F]{64}$/;

/** The principal a signing key is under `--auth sigs`: its hex is the user (the store), with read and write. */
export function signingKeyPrincipal(publicKey: string, entry: Omit<AllowedKey, "publicKey"> = {}): Principal {
  const quota = quotaOf(entry);
  return { name: entry.name ?? `sigs:${publicKey}`, storeId: publicKey, roles: new Set(["read", "write"]), ...(quota !== undefined && { quota }) };
}

/** The keys of one allow-list file, looked up by their lowercase hex. */
export class SigsAllowList {
  private constructor(private readonly byKey: ReadonlyMap<string, Principal>) {}

  /** Reads and checks the file; throws an Error naming the problem (and the entry) when it is wrong. */
  static load(path: string): SigsAllowList {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(path, "utf8"));
    } catch (error) {
      throw new Error(`${path}: ${(error as Error).message}`);
    }
    const entries = (data as { publicKeys?: unknown } | null)?.publicKeys;
    if (!Array.isArray(entries)) throw new Error(`${path}: expected {"publicKeys": [...]}`);
    const byKey = new Map<string, Principal>();
    entries.forEach((entry: unknown, i) => {
      const where = `${path}: publicKeys[${i}]`;
      if (typeof entry !== "object" || entry === null) throw new Error(`${where}: expected an object`);
      const record = entry as Record<string, unknown>;
      for (const key of Object.keys(record)) if (!KNOWN_KEYS.has(key)) throw new Error(`${where}: unknown key "${key}"`);
      const publicKey = record["publicKey"];
      if (typeof publicKey !== "string" || !PUBLIC_KEY.test(publicKey)) {
        throw new Error(`${where}: "publicKey" must be a compressed secp256k1 public key: 66 hex digits starting 02 or 03`);
      }
      if (record["name"] !== undefined && (typeof record["name"] !== "string" || record["name"] === "")) {
        throw new Error(`${where}: "name" must be a non-empty string`);
      }
      checkQuotaFields(record, where);
      const user = publicKey.toLowerCase();
      if (byKey.has(user)) throw new Error(`${where}: the public key ${user} is listed twice`);
      // Every field was checked above.
      byKey.set(user, signingKeyPrincipal(user, record as unknown as AllowedKey));
    });
    return new SigsAllowList(byKey);
  }

  /** The principal of a listed key (lowercase hex), or undefined when the list does not have it. */
  principalOf(publicKey: string): Principal | undefined {
    return this.byKey.get(publicKey);
  }
}
