//! Secrets of store URIs kept out of messages, logs and files: the one redaction every output uses.

/** Query parameters whose value is a secret, whatever the scheme (`token_file` names a file: kept). */
const SECRET_PARAMETERS = /([?&](?:password|sslpassword|token)=)[^&#]*/gi;
const HIDDEN = "***";

/** A `scheme://[user[:password]@]host…` URI taken apart at its credentials. */
export interface UriAuthority {
  /** `postgres://` */
  readonly prefix: string;
  /** The user as written, or undefined when the URI names none. */
  readonly user: string | undefined;
  /** The password as written (still percent-encoded), or undefined. */
  readonly password: string | undefined;
  /** Everything after the credentials: host, port, path, query. */
  readonly rest: string;
}

/**
 * Splits a `scheme://` URI at its credentials without URL parsing, which would end them at a raw
 * `/`, `?` or `#` inside a password: they end at the last `@` before the first `?` or `#`, or,
 * when none is there (a password holding `?`), at the first `@` after it. Undefined for a URI
 * without `://` (sqlite:PATH, fs:DIR, memory:).
 */
export function splitUriAuthority(uri: string): UriAuthority | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\//i.exec(uri);
  if (match === null) return undefined;
  const prefix = match[0];
  const after = uri.slice(prefix.length);
  const query = after.search(/[?#]/);
  let at = query < 0 ? after.lastIndexOf("@") : after.lastIndexOf("@", query);
  if (at < 0 && query >= 0) at = after.indexOf("@", query);
  if (at < 0) return { prefix, user: undefined, password: undefined, rest: after };
  const credentials = after.slice(0, at);
  const colon = credentials.indexOf(":");
  return {
    prefix,
    user: colon < 0 ? credentials : credentials.slice(0, colon),
    password: colon < 0 ? undefined : credentials.slice(colon + 1),
    rest: after.slice(at + 1),
  };
}

/**
 * `uri` fit to show: the password of a `scheme://user:password@host` URI and the values of its
 * `password=`, `sslpassword=` and `token=` parameters become `***`; hosts, paths and file
 * parameters (`token_file=`, `sslrootcert=`) stay, so the message still says which store.
 */
export function redactStoreUri(uri: string): string {
  const parts = splitUriAuthority(uri);
  if (parts === undefined) return uri;
  const credentials = parts.user === undefined ? "" : `${parts.user}${parts.password === undefined ? "" : `:${HIDDEN}`}@`;
  return `${parts.prefix}${credentials}${parts.rest}`.replace(SECRET_PARAMETERS, `$1${HIDDEN}`);
}
