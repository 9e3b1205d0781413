//! The identities file (`--tokens-file`): bearer tokens, stored only as SHA-256 hashes, and
//! client-certificate subjects, each bound to a store, roles and an optional quota.

import { createHash, randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync, existsSync, fchmodSync } from "node:fs";
import { ROLES, type Principal, type Role } from "./principal.js";
import { checkQuotaFields, QUOTA_FIELDS, quotaOf, type QuotaFields } from "./quota-fields.js";

/** One entry of the file, as written on disk. */
export interface IdentityEntry extends QuotaFields {
  /** Names the entry for `token list` / `token rm`; entries written before ids existed have none. */
  readonly id?: string;
  /** When `token add` made the entry (ISO 8601, UTC). */
  readonly created?: string;
  readonly name?: string;
  /** SHA-256 of the bearer token, lowercase hex. */
  readonly tokenSha256?: string;
  /** A client certificate's subject common name (mTLS). */
  readonly mtlsSubject?: string;
  readonly store: string;
  readonly roles: readonly Role[];
}

interface FileShape {
  readonly identities: IdentityEntry[];
}

const KNOWN_KEYS = new Set(["id", "created", "name", "tokenSha256", "mtlsSubject", "store", "roles", ...QUOTA_FIELDS]);

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
      const quota = quotaOf(entry);
      const principal: Principal = {
        name: entry.name ?? entry.mtlsSubject ?? `${path}#${i}`,
        storeId: entry.store,
        roles: new Set(entry.roles),
        ...(quota !== undefined && { quota }),
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
  // Only ids written in the file must be unique: a file that loaded before ids existed still loads.
  const ids = new Set<string>();
  for (const { id } of identities as IdentityEntry[]) {
    if (id === undefined) continue;
    if (ids.has(id)) throw new Error(`${path}: two entries have the id "${id}"`);
    ids.add(id);
  }
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
  const id = record["id"];
  if (id !== undefined && (typeof id !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(id))) {
    throw new Error(`${where}: "id" must be 1 to 64 of A-Z a-z 0-9 _ -`);
  }
  const created = record["created"];
  if (created !== undefined && (typeof created !== "string" || Number.isNaN(Date.parse(created)))) {
    throw new Error(`${where}: "created" must be an ISO 8601 date`);
  }
  const hash = record["tokenSha256"];
  if (hash !== undefined && (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash))) {
    throw new Error(`${where}: "tokenSha256" must be 64 lowercase hex digits`);
  }
  if (hash === undefined && typeof record["mtlsSubject"] !== "string") {
    throw new Error(`${where}: needs "tokenSha256" or "mtlsSubject"`);
  }
  checkQuotaFields(record, where);
}

/**
 * The entry's id: its own, or for an entry written before ids existed one derived from the whole
 * entry, so it stays the same from one `token list` to the next (rewrites keep other entries as
 * they are). The derivation is salted: the id never shows the stored hash.
 */
export function entryId(entry: IdentityEntry): string {
  if (entry.id !== undefined) return entry.id;
  return createHash("sha256").update(`tierkv-identity-id:${JSON.stringify(entry)}`).digest("hex").slice(0, 16);
}

/** What `token list` shows of an entry: never the token's hash. */
export interface ListedIdentity extends QuotaFields {
  readonly id: string;
  readonly name?: string;
  readonly mtlsSubject?: string;
  readonly store: string;
  readonly roles: readonly Role[];
  readonly created?: string;
}

/** Every entry of the file, in file order, without secrets or hashes. */
export function listIdentities(path: string): ListedIdentity[] {
  return parse(readFileSync(path, "utf8"), path).identities.map(listed);
}

function listed(entry: IdentityEntry): ListedIdentity {
  return {
    id: entryId(entry),
    ...(entry.name !== undefined && { name: entry.name }),
    ...(entry.mtlsSubject !== undefined && { mtlsSubject: entry.mtlsSubject }),
    store: entry.store,
    roles: entry.roles,
    ...quotaOf(entry),
    ...(entry.created !== undefined && { created: entry.created }),
  };
}

/**
 * Replaces the file atomically (temp file, fsync, rename): readers see the old or the new file.
 * An existing file keeps its mode; a new one is readable by its owner only.
 */
function rewrite(path: string, shape: FileShape): void {
  const mode = existsSync(path) ? statSync(path).mode & 0o7777 : 0o600;
  const temp = `${path}.${process.pid}.tmp`;
  const fd = openSync(temp, "w", 0o600);
  try {
    // fchmod, not open's mode: the umask would change that one.
    fchmodSync(fd, mode);
    writeSync(fd, `${JSON.stringify(shape, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

/**
 * Creates a token for `store` with `roles`, appends its hash to the file (created when missing,
 * replaced atomically) with a new id and the time, and returns the id and the token: the token is
 * shown once and stored nowhere in clear.
 */
export function addToken(path: string, entry: Omit<IdentityEntry, "id" | "created" | "tokenSha256" | "mtlsSubject">): { id: string; token: string } {
  const current: FileShape = existsSync(path) ? parse(readFileSync(path, "utf8"), path) : { identities: [] };
  const token = `tkv_${randomBytes(32).toString("base64url")}`;
  const id = randomBytes(8).toString("hex");
  const added: IdentityEntry = { id, created: new Date().toISOString(), ...entry, tokenSha256: hashToken(token) };
  checkEntry(added, `new entry`);
  rewrite(path, { identities: [...current.identities, added] });
  return { id, token };
}

/** Removes the entry with `id`; throws, changing nothing, when the file has none. */
export function removeIdentity(path: string, id: string): ListedIdentity {
  const current = parse(readFileSync(path, "utf8"), path);
  const index = current.identities.findIndex((entry) => entryId(entry) === id);
  if (index < 0) throw new Error(`${path} has no entry with id "${id}" (tierkv token list --tokens-file ${path} shows the ids)`);
  rewrite(path, { identities: current.identities.filter((_, i) => i !== index) });
  return listed(current.identities[index]!);
}
