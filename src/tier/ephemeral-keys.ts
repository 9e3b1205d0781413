//! Which keys belong to the ephemeral tier (contract §4).

import type { KeyRef, NamespaceRef } from "../store/types.js";
import { formatPath, parseKeyPath } from "../store/validate.js";

/** LDK Node's defaults: rebuildable caches in the root namespace. */
export const DEFAULT_EPHEMERAL_KEYS: readonly string[] = [
  "network_graph",
  "scorer",
  "external_pathfinding_scores_cache",
];

/** A fixed set of keys (written `key`, `ns/key` or `ns/sub/key`), with lookups by key and namespace. */
export class EphemeralKeys {
  private readonly paths: ReadonlySet<string>;
  private readonly byNamespace = new Map<string, Set<string>>();

  constructor(paths: readonly string[] = DEFAULT_EPHEMERAL_KEYS) {
    const refs = paths.map(parseKeyPath);
    this.paths = new Set(refs.map((ref) => formatPath(ref)));
    for (const ref of refs) {
      const keys = this.byNamespace.get(namespaceId(ref)) ?? new Set<string>();
      this.byNamespace.set(namespaceId(ref), keys.add(ref.key));
    }
  }

  has(ref: KeyRef): boolean {
    return this.paths.has(formatPath(ref));
  }

  /** The ephemeral keys of `ns`; empty when the namespace holds none. */
  inNamespace(ns: NamespaceRef): ReadonlySet<string> {
    return this.byNamespace.get(namespaceId(ns)) ?? NONE;
  }
}

const NONE: ReadonlySet<string> = new Set();

function namespaceId(ns: NamespaceRef): string {
  return `${ns.primaryNamespace}/${ns.secondaryNamespace}`;
}
