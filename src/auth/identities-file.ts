//! The identities file (`--tokens-file`): bearer tokens, stored only as SHA-256 hashes, and
//! client-certificate subjects, each bound to a store, roles and an optional quota.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { ROLES, type Principal, type Role } from "./principal.js";

/** One entry of the file, as written on disk. */
export interface IdentityEntry {
  readonly name?: string;
  /** SHA-256 of the bearer token, lowercase hex. */
  readonly tokenSha256?: string;
  /** A client certificate's subject common name (mTLS). */
  readonly mtlsSubject?: string;
  readonly store: string;
  readonly roles: readonly Role[];
  readonly maxKeys?: number;
  readonly maxBytes?: number;
}

interface FileShape {
  readonly identities: IdentityEntry[];
}

const KNOWN_KEYS = new Set(["name", "tokenSha256", "mtlsSubject", "store", "roles", "maxKeys", "maxBytes"]);

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Loaded identities, looked up by token hash and by certificate subject. */
export class Identities {
  private constructor(
    private readonly byTokenHash: ReadonlyMap<string, Principal>,
    private readonly bySubject: ReadonlyMap<string, Principal>,
  ) {}

  /** Reads and checks the file; throws an Error naming the problem (and the entry) when it is wrong. */
  static load(path: string): Identities {
    const byTokenHash = new Map<string, Principal>();
    const bySubject = new Map<string, Principal>();
    parse(readFileSync(path, "utf8"), path).identities.forEach((entry, i) => {
      const principal: Principal = {
        name: entry.name ?? entry.mtlsSubject ?? `${path}#${i}`,
        storeId: entry.store,
        roles: new Set(entry.roles),
        ...((entry.maxKeys !== undefined || entry.maxBytes !== undefined) && {
          quota: { maxKeys: entry.maxKeys, maxBytes: entry.maxBytes },
        }),
      };
      if (entry.tokenSha256 !== undefined) byTokenHash.set(entry.tokenSha256, principal);
      if (entry.mtlsSubject !== undefined) bySubject.set(entry.mtlsSubject, principal);
    });
    return new Identities(byTokenHash, bySubject);
  }

  byToken(token: string): Principal | undefined {
    return this.byTokenHash.get(hashToken(token));
  }

  byCertificateSubject(subject: string): Principal | undefined {
    return this.bySubject.get(subject);
  }
}

function parse(text: string, path: string): FileShape {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not JSON: ${(error as Error).message}`);
  }
  const identities = (data as { identities?: unknown } | null)?.identities;
  if (!Array.isArray(identities)) throw new Error(`${path}: expected {"identities": [...]}`);
  identities.forEach((entry: unknown, i) => checkEntry(entry, `${path}: identities[${i}]`));
  return { identities: identities as IdentityEntry[] };
}

function checkEntry(entry: unknown, where: string): void {
  if (typeof entry !== "object" || entry === null) throw new Error(`${where}: expected an object`);
  const record = entry as Record<string, unknown>;
  for (const key of Object.keys(record)) if (!KNOWN_KEYS.has(key)) throw new Error(`${where}: unknown key "${key}"`);
  if (typeof record["store"] !== "string" || record["store"] === "") throw new Error(`${where}: "store" must be a non-empty string`);
  const roles = record["roles"];
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => (ROLES as readonly unknown[]).includes(r))) {
    throw new Error(`${where}: "roles" must be a non-empty list of ${ROLES.join(", ")}`);
  }
  const hash = record["tokenSha256"];
  if (hash !== undefined && (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash))) {
    throw new Error(`${where}: "tokenSha256" must be 64 lowercase hex digits`);
  }
  if (hash === undefined && typeof record["mtlsSubject"] !== "string") {
    throw new Error(`${where}: needs "tokenSha256" or "mtlsSubject"`);
  }
  for (const limit of ["maxKeys", "maxBytes"]) {
    const value = record[limit];
    if (value !== undefined && (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)) {
      throw new Error(`${where}: "${limit}" must be a non-negative whole number`);
    }
  }
}

/**
 * Creates a token for `store` with `roles`, appends its hash to the file (created when missing,
 * replaced atomically, readable by its owner only) and returns the token: it is shown once and
 * stored nowhere in clear.
 */
export function addToken(path: string, entry: Omit<IdentityEntry, "tokenSha256" | "mtlsSubject">): string {
  const current: FileShape = existsSync(path) ? parse(readFileSync(path, "utf8"), path) : { identities: [] };
  const token = `tkv_${randomBytes(32).toString("base64url")}`;
  const next: FileShape = { identities: [...current.identities, { ...entry, tokenSha256: hashToken(token) }] };
  checkEntry(next.identities.at(-1), `new entry`);
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, path);
  return token;
}
