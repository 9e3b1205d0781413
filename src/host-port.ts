//! `host:port` addresses (`--listen`, `--vss-listen`, `--metrics-listen`, `--server`), taken apart in
//! one place: split at the last `:` so a bracketed IPv6 host (`[::1]:50051`) keeps its colons.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** The host and port of `address`; throws naming `flag` when it is not host:port with a port in 0..65535. */
export function parseHostPort(address: string, flag: string): HostPort {
  const colon = address.lastIndexOf(":");
  if (colon < 0) throw new Error(`${flag} "${address}" must be host:port`);
  const port = Number(address.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${flag} "${address}" has no valid port`);
  return { host: address.slice(0, colon), port };
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** Whether `address` (host:port) names a loopback host; false for anything that is not host:port. */
export function isLoopbackAddress(address: string): boolean {
  const colon = address.lastIndexOf(":");
  return colon >= 0 && LOOPBACK_HOSTS.has(address.slice(0, colon));
}
