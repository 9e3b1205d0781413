//! The fuzzer's target: a real in-process tierkv (TierStore over SQLite in a temp dir) with an
//! identities file and `--auth tokens`, serving gRPC (KVStoreService, AdminService), Connect /
//! gRPC-Web on an HTTP listener, and VSS on its own listener when src/vss provides one. Every
//! internal failure a surface reports is captured (the observer and the log) for the test to show.

import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { DescMessage } from "@bufbuild/protobuf";
import { pino, type Logger } from "pino";
import { Authenticator } from "../../../src/auth/authenticator.js";
import { addToken } from "../../../src/auth/identities-file.js";
import type { Role } from "../../../src/auth/principal.js";
import { DEFAULT_LIMITS, type Limits } from "../../../src/limits.js";
import { connectService } from "../../../src/server/connect-service.js";
import { startServer, type RunningServer } from "../../../src/server/server.js";
import { SqliteStore } from "../../../src/store/sqlite.js";
import { TierStore } from "../../../src/tier/tier-store.js";
import { tempDir } from "../../support/temp.js";

/** Small limits, so over-size cases stay cheap: `--max-value-bytes 65536` and friends. */
export const FUZZ_LIMITS: Limits = {
  ...DEFAULT_LIMITS,
  maxValueBytes: 64 * 1024,
  maxBatchItems: 64,
  maxBatchBytes: 256 * 1024,
  maxListKeys: 1000,
};

export interface Identity {
  readonly token: string;
  readonly store: string;
  readonly roles: readonly Role[];
}

/** The identities of the fuzz server. */
export interface Identities {
  /** `read` only, store tenant-a: what most fuzz traffic authenticates as. */
  readonly reader: Identity;
  /** `write`, store tenant-a: seeds data, and sends invalid requests only. */
  readonly writer: Identity;
  /** `write`, store tenant-b: seeds a second tenant. */
  readonly writerB: Identity;
  /** `admin`, store ops: snapshots every store (never fuzzed with). */
  readonly admin: Identity;
}

/** What src/vss provides, reached through a dynamic import so this harness works without it. */
interface VssServerModule {
  startVssServer(options: {
    listen: string;
    store: TierStore;
    limits: Limits;
    logger: Logger;
    authenticate?: Authenticator["authenticate"];
  }): Promise<{ address: string; port: number; close(graceMs?: number): Promise<void> }>;
}

/** The VSS listener and its messages (from gen/vss). */
export interface VssEndpoint {
  /** `http://127.0.0.1:PORT/vss`. */
  readonly base: string;
  readonly requests: {
    readonly getObject: DescMessage;
    readonly putObjects: DescMessage;
    readonly deleteObject: DescMessage;
    readonly listKeyVersions: DescMessage;
  };
  readonly getObjectResponse: DescMessage;
  readonly listKeyVersionsResponse: DescMessage;
  readonly errorResponse: DescMessage;
}

interface VssModules {
  readonly server: VssServerModule;
  readonly messages: Record<string, DescMessage>;
}

export interface FuzzServer {
  readonly grpcAddress: string;
  /** `http://127.0.0.1:PORT`: Connect and gRPC-Web. */
  readonly httpBase: string;
  /** The VSS listener, or undefined when src/vss offers none. */
  readonly vss: VssEndpoint | undefined;
  /** Why VSS is not served, when it is not. */
  readonly vssSkipped: string | undefined;
  readonly identities: Identities;
  readonly tiers: TierStore;
  /** Internal failures seen so far: surface, method and cause. */
  readonly internalFailures: { surface: string; method: string; cause: string }[];
  /** Log lines at warn or above. */
  readonly warnings: string[];
  close(): Promise<void>;
}

function captureLogger(lines: string[]): Logger {
  return pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
}

/** A VSS listener from src/vss when it exists and exports `startVssServer`; else why not. */
async function loadVss(): Promise<VssModules | string> {
  // Variables, not literals: the harness must compile and run while src/vss is absent.
  const serverPath = "../../../src/vss/http-server.js";
  const messagesPath = "../../../gen/vss/v1/vss_pb.js";
  try {
    const server = (await import(/* @vite-ignore */ serverPath)) as Partial<VssServerModule>;
    if (typeof server.startVssServer !== "function") return "src/vss/http-server.ts exports no startVssServer";
    const messages = (await import(/* @vite-ignore */ messagesPath)) as Record<string, DescMessage>;
    return { server: server as VssServerModule, messages };
  } catch (error) {
    return `src/vss could not be loaded: ${(error as Error).message}`;
  }
}

function vssEndpoint(port: number, messages: Record<string, DescMessage>): VssEndpoint {
  const schema = (name: string): DescMessage => {
    const found = messages[name];
    if (found === undefined) throw new Error(`gen/vss/v1/vss_pb.ts has no ${name}`);
    return found;
  };
  return {
    base: `http://127.0.0.1:${port}/vss`,
    requests: {
      getObject: schema("GetObjectRequestSchema"),
      putObjects: schema("PutObjectRequestSchema"),
      deleteObject: schema("DeleteObjectRequestSchema"),
      listKeyVersions: schema("ListKeyVersionsRequestSchema"),
    },
    getObjectResponse: schema("GetObjectResponseSchema"),
    listKeyVersionsResponse: schema("ListKeyVersionsResponseSchema"),
    errorResponse: schema("ErrorResponseSchema"),
  };
}

export async function startFuzzServer(): Promise<FuzzServer> {
  const dir = tempDir("tierkv-fuzz-");
  const tokensFile = join(dir, "identities.json");
  const identity = (name: string, store: string, roles: Role[]): Identity => ({ token: addToken(tokensFile, { name, store, roles }).token, store, roles });
  const identities: Identities = {
    reader: identity("fuzz-reader", "tenant-a", ["read"]),
    writer: identity("fuzz-writer", "tenant-a", ["write"]),
    writerB: identity("fuzz-writer-b", "tenant-b", ["write"]),
    admin: identity("fuzz-admin", "ops", ["admin"]),
  };
  const warnings: string[] = [];
  const logger = captureLogger(warnings);
  const authenticator = await Authenticator.open({ modes: ["tokens"], tokensFile }, logger);
  const tiers = new TierStore({ primary: new SqliteStore(join(dir, "primary.sqlite")), logger });
  const internalFailures: FuzzServer["internalFailures"] = [];

  const grpcServer: RunningServer = await startServer({
    listen: "127.0.0.1:0",
    store: tiers,
    admin: tiers,
    limits: FUZZ_LIMITS,
    logger,
    authenticate: authenticator.authenticate,
    observeCall: {
      ended: (method, error) => {
        if (error?.code === "internal") {
          const cause = error.cause instanceof Error ? `${error.cause.name}: ${error.cause.message}` : String(error.cause ?? error.message);
          internalFailures.push({ surface: "grpc", method: method.name, cause });
        }
      },
    },
  });

  const connect = connectService({ store: tiers, limits: FUZZ_LIMITS, authenticate: authenticator.authenticate, logger, corsOrigins: [] });
  const http: Server = createServer((request, response) => connect(request, response, () => response.writeHead(404).end()));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const httpBase = `http://127.0.0.1:${(http.address() as { port: number }).port}`;

  const vss = await loadVss();
  const vssServer =
    typeof vss === "string"
      ? undefined
      : await vss.server.startVssServer({ listen: "127.0.0.1:0", store: tiers, limits: FUZZ_LIMITS, logger, authenticate: authenticator.authenticate });

  return {
    grpcAddress: grpcServer.address,
    httpBase,
    vss: vssServer === undefined || typeof vss === "string" ? undefined : vssEndpoint(vssServer.port, vss.messages),
    vssSkipped: typeof vss === "string" ? vss : undefined,
    identities,
    tiers,
    internalFailures,
    warnings,
    async close() {
      await vssServer?.close(1_000);
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      await grpcServer.shutdown(1_000);
      await tiers.close();
    },
  };
}
