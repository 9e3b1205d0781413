//! A loopback TCP proxy that delays every chunk by a random time (order kept): a slow link.

import { createServer, connect, type Socket } from "node:net";

export interface DelayProxy {
  /** `127.0.0.1:port` to connect to instead of the target. */
  readonly address: string;
  close(): Promise<void>;
}

/** Forwards `src` to `dst`, each chunk after a random delay in [minMs, maxMs], in order. */
function pipeDelayed(src: Socket, dst: Socket, minMs: number, maxMs: number): void {
  let previous = Promise.resolve();
  src.on("data", (chunk: Buffer) => {
    const delay = minMs + Math.random() * (maxMs - minMs);
    previous = previous.then(() => new Promise<void>((resolve) => setTimeout(resolve, delay))).then(() => {
      if (!dst.destroyed) dst.write(chunk);
    });
  });
  src.on("end", () => void previous.then(() => dst.end()));
  src.on("error", () => dst.destroy());
}

export async function startDelayProxy(target: string, minMs: number, maxMs: number): Promise<DelayProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    }
    pipeDelayed(client, upstream, minMs, maxMs);
    pipeDelayed(upstream, client, minMs, maxMs);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
