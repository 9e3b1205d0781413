//! The query parameters of store URIs (`grpc://…?token_file=F`, `postgres://…?sslrootcert=F`),
//! decoded as RFC 3986 percent-encoding only. URLSearchParams reads a query as an HTML form, where
//! `+` means a space: a file path such as `/run/a+b/token` named another file. libpq also keeps a
//! `+` as it is.

/** Each parameter's value (the first, when one repeats); throws for malformed percent-encoding. */
export function uriQuery(url: URL): Map<string, string> {
  const params = new Map<string, string>();
  for (const pair of url.search.slice(1).split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const [name, value] = equals < 0 ? [pair, ""] : [pair.slice(0, equals), pair.slice(equals + 1)];
    let decoded: [string, string];
    try {
      decoded = [decodeURIComponent(name), decodeURIComponent(value)];
    } catch {
      throw new Error(`parameter "${name}": a "%" must start an escape such as %2B; write a literal % as %25`);
    }
    if (!params.has(decoded[0])) params.set(decoded[0], decoded[1]);
  }
  return params;
}
