// A handler that fails with anything but a StoreError — a synchronous throw, a rejected promise, a
// response that cannot be built, a throw inside a response stream — is answered INTERNAL
// "internal error" and logged at error with its cause; the process sees no unhandled rejection.
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/tierkv/v1/admin_pb.js";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { grpcHandlers, type ServiceImpl } from "../../src/rpc/service-definition.js";
import { callObserver } from "../../src/server/server.js";
import { StoreError } from "../../src/store/errors.js";
import { readAll, rejection, serverStreamCall, startServiceServer, unaryCall, type ServiceServer } from "../support/service-server.js";

/** One pino line as the server's logger wrote it. */
interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly method?: string;
  readonly err?: unknown;
}

const ERROR_LEVEL = 50;

/** Builds a response whose `keys` cannot be read: creating the message from it throws. */
function unbuildable(): { keys: string[] } {
  return {
    get keys(): string[] {
      throw new Error("list response exploded");
    },
  };
}

const kvStore: ServiceImpl<typeof KVStoreService> = {
  async *watch() {
    throw new Error("watch exploded");
  },
  async txn() {
    throw new Error("txn rejected");
  },
  read() {
    throw new Error("read exploded synchronously");
  },
  async write() {
    throw new TypeError("write rejected");
  },
  async remove() {
    // Not even an Error.
    throw "remove rejected with a string";
  },
  async list() {
    return unbuildable();
  },
  async listPage() {
    throw new StoreError("not-found", "no such page");
  },
  async listAllKeys() {
    return { keys: [] };
  },
  mutate() {
    return Promise.reject(new RangeError("mutate rejected"));
  },
};

async function* progressThenThrow(): AsyncGenerator<{ scanned: bigint }> {
  yield { scanned: 1n };
  throw new Error("resync generator exploded");
}

let nextFault = "";
const admin: ServiceImpl<typeof AdminService> = {
  async storeUsage() {
    throw new Error("storeUsage rejected");
  },
  async *snapshot() {},
  // The test picks the fault before each call (handlers see no transport metadata), so one
  // implementation covers every way a stream can fail.
  resync() {
    switch (nextFault) {
      case "sync":
        throw new Error("resync exploded synchronously");
      case "respond":
        return (async function* () {
          yield { scanned: 1n };
          yield { get scanned(): bigint { throw new Error("resync response exploded"); } };
        })();
      default:
        return progressThenThrow();
    }
  },
  async backupStatus() {
    throw new Error("backup status exploded");
  },
};

const lines: LogLine[] = [];
const unhandled: unknown[] = [];
const recordUnhandled = (reason: unknown): void => void unhandled.push(reason);
let servers: ServiceServer[] = [];
let client: grpc.Client;
let adminClient: grpc.Client;

beforeAll(async () => {
  process.on("unhandledRejection", recordUnhandled);
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const observe = callObserver(logger);
  const kvServer = await startServiceServer(KVStoreService, grpcHandlers(KVStoreService, kvStore, observe));
  const adminServer = await startServiceServer(AdminService, grpcHandlers(AdminService, admin, observe));
  servers = [kvServer, adminServer];
  client = new grpc.Client(kvServer.address, grpc.credentials.createInsecure());
  adminClient = new grpc.Client(adminServer.address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  adminClient?.close();
  for (const server of servers) await server.close();
  process.off("unhandledRejection", recordUnhandled);
});

/** Asserts an INTERNAL "internal error" status and an error-level log line carrying `cause`. */
function expectInternal(error: grpc.ServiceError | undefined, method: string, cause: string): void {
  expect(error?.code, error?.details).toBe(grpc.status.INTERNAL);
  expect(error!.details).toBe("internal error");
  const logged = lines.find((line) => line.method === method && line.level === ERROR_LEVEL);
  expect(logged, `no error logged for ${method}`).toBeDefined();
  // An Error is logged as an object with its message; anything else as it is.
  expect(JSON.stringify(logged!.err)).toContain(cause);
}

describe("a unary handler", () => {
  it("that throws synchronously", async () => {
    const error = await rejection(unaryCall(client, KVStoreService.method.read, { key: "k" }).response);
    expectInternal(error, "Read", "read exploded synchronously");
  });

  it("whose promise rejects with an Error", async () => {
    expectInternal(await rejection(unaryCall(client, KVStoreService.method.write, { key: "k" }).response), "Write", "write rejected");
    expectInternal(await rejection(unaryCall(client, KVStoreService.method.mutate, {}).response), "Mutate", "mutate rejected");
    expectInternal(await rejection(unaryCall(adminClient, AdminService.method.backupStatus, {}).response), "BackupStatus", "backup status exploded");
  });

  it("whose promise rejects with something else", async () => {
    const error = await rejection(unaryCall(client, KVStoreService.method.remove, { key: "k" }).response);
    expectInternal(error, "Remove", "remove rejected with a string");
  });

  it("whose response cannot be built", async () => {
    const error = await rejection(unaryCall(client, KVStoreService.method.list, {}).response);
    expectInternal(error, "List", "list response exploded");
  });

  it("that fails with a StoreError is answered with its code and not logged at error", async () => {
    const error = await rejection(unaryCall(client, KVStoreService.method.listPage, {}).response);
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toBe("no such page");
    expect(lines.filter((line) => line.method === "ListPage" && line.level >= ERROR_LEVEL)).toEqual([]);
  });
});

describe("a streaming handler", () => {
  for (const [fault, cause] of [
    ["sync", "resync exploded synchronously"],
    ["generator", "resync generator exploded"],
    ["respond", "resync response exploded"],
  ] as const) {
    it(`that fails (${fault})`, async () => {
      lines.length = 0;
      nextFault = fault;
      const { messages, error } = await readAll(serverStreamCall(adminClient, AdminService.method.resync, {}));
      expect(messages.length).toBe(fault === "sync" ? 0 : 1);
      expectInternal(error, "Resync", cause);
    });
  }
});

describe("afterwards", () => {
  it("the servers still answer and no rejection went unhandled", async () => {
    expect((await unaryCall(client, KVStoreService.method.listAllKeys, {}).response).keys).toEqual([]);
    // A rejection is reported unhandled at the end of its turn; give any stray one that turn.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unhandled).toEqual([]);
  });
});
