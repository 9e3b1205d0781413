//! Who is calling: the identity every surface authenticates before any store operation, and the
//! roles it holds (contract §6, tenancy).

import type { Quota } from "../store/types.js";

/**
 * What a caller may do. `write` includes `read`; `replicate` includes both, for every store;
 * `admin` includes `read`, of every store (AuthorizedStore lets it name any store for reading).
 */
export type Role = "read" | "write" | "admin" | "replicate";

export const ROLES: readonly Role[] = ["read", "write", "admin", "replicate"];

export interface Principal {
  /** For logs: the identity's name (token name, JWT subject, certificate subject). Never a secret. */
  readonly name: string;
  /** The store (tenant) the caller's own keys live in. */
  readonly storeId: string;
  readonly roles: ReadonlySet<Role>;
  /** The limits of every usage group it writes (contract §6.3). */
  readonly quota?: Quota;
}

/**
 * The roles that grant each role's rights: `write`, `admin` and `replicate` can read, `replicate`
 * can write. (Without `admin` here, an admin-only caller was refused every read before its right
 * to read other stores and list every store was looked at.)
 */
const GRANTED_BY: Record<Role, readonly Role[]> = {
  read: ["read", "write", "admin", "replicate"],
  write: ["write", "replicate"],
  admin: ["admin"],
  replicate: ["replicate"],
};

/** Whether `principal` may do what `role` allows. */
export function allows(principal: Principal, role: Role): boolean {
  return GRANTED_BY[role].some((granting) => principal.roles.has(granting));
}

/** The caller of a server that runs without authentication (loopback only): every role, store `default`. */
export const OPEN_PRINCIPAL: Principal = {
  name: "anonymous",
  storeId: "default",
  roles: new Set(ROLES),
};
