//! Store URIs split at their scheme, once: `memory:`, `sqlite:PATH`, `fs:DIR`, `postgres://…`
//! (or `postgresql://`), `grpc://HOST:PORT`, `grpcs://HOST:PORT?…`. The scheme names the backend;
//! the rest is that backend's to check (postgres-uri.ts, remote-store.ts). Opening (src/app/),
//! migrate and its checkpoints all start here instead of splitting at ":" themselves.

/** A store URI by backend; `uri` is the text as given. Nothing is checked beyond the scheme. */
export type StoreUri =
  | { readonly kind: "memory"; readonly uri: string; readonly rest: string }
  | { readonly kind: "sqlite" | "fs"; readonly uri: string; readonly path: string }
  | { readonly kind: "postgres"; readonly uri: string }
  | { readonly kind: "remote"; readonly uri: string; readonly scheme: "grpc" | "grpcs" }
  | { readonly kind: "unknown"; readonly uri: string; readonly scheme: string };

/** The schemes store URIs may have, for help texts and error messages. */
export const STORE_URI_SCHEMES = [
  "memory:",
  "sqlite:PATH",
  "fs:DIR",
  "postgres://USER@HOST:PORT/DB",
  "grpc://HOST:PORT",
  "grpcs://HOST:PORT",
] as const;

/** Splits `uri` at its scheme (before the first `:`; an empty scheme when there is none). */
export function parseStoreUri(uri: string): StoreUri {
  const colon = uri.indexOf(":");
  const scheme = colon < 0 ? "" : uri.slice(0, colon);
  const rest = colon < 0 ? "" : uri.slice(colon + 1);
  switch (scheme) {
    case "memory":
      return { kind: "memory", uri, rest };
    case "sqlite":
    case "fs":
      return { kind: scheme, uri, path: rest };
    case "postgres":
    case "postgresql":
      return { kind: "postgres", uri };
    case "grpc":
    case "grpcs":
      return { kind: "remote", uri, scheme };
    default:
      return { kind: "unknown", uri, scheme };
  }
}
