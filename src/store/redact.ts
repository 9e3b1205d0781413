//! Hiding secrets in store URIs before they reach a log line, an error message or `--print-config`.

/** Query parameters whose value is a secret (`password=`, `sslpassword=`, any `…password=`). */
const SECRET_PARAMETER = /([?&][^=&#]*password=)[^&#]*/gi;

/**
 * `uri` with the password of its user info and every `…password=` parameter shown as `***`.
 * Works on text that is not a valid URL too (a password with a raw `@`, `/` or `%`): the user info
 * runs from `scheme://` to the last `@` before the query, so a password that breaks the parse is
 * still hidden; in doubt (an `@` in the path) it hides more, never less.
 */
export function redactStoreUri(uri: string): string {
  const query = uri.search(/[?#]/);
  const [base, rest] = query < 0 ? [uri, ""] : [uri.slice(0, query), uri.slice(query)];
  const authority = /^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)(.*)@/i.exec(base);
  const redactedBase = authority === null ? base : `${authority[1]}***@${base.slice(authority[0].length)}`;
  return redactedBase + rest.replace(SECRET_PARAMETER, "$1***");
}
