// A call the caller cancels (or whose deadline passes) aborts the handler's signal, closes a
// response stream's generator even while it waits for the client to read, leaves no listener
// behind, and is reported to the observer as cancelled.
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { AdminService } from "../../gen/tierkv/v1/admin_pb.js";
import { grpcHandlers, type ServiceImpl } from "../../src/rpc/service-definition.js";
import { StoreError } from "../../src/store/errors.js";
import {
  readAll,
  recordingObserver,
  rejection,
  serverStreamCall,
  startServiceServer,
  unaryCall,
  type ServiceServer,
} from "../support/service-server.js";

type Admin = ServiceImpl<typeof AdminService>;

/** How long a cancellation may take to reach the handler. */
const BOUND_MS = 2_000;

// Each test sets what the service does; the server is shared.
let resync: Admin["resync"];
let backupStatus: Admin["backupStatus"];
const admin: Admin = {
  resync: (request, context) => resync(request, context),
  backupStatus: (request, context) => backupStatus(request, context),
  storeUsage: async () => ({}),
  snapshot: async function* () {},
};

const { observe, calls: observed } = recordingObserver();
/** The server side of every Resync call, to count the listeners left on it. */
const serverCalls: grpc.ServerWritableStream<unknown, unknown>[] = [];
let server: ServiceServer;
let client: grpc.Client;

beforeAll(async () => {
  const handlers = grpcHandlers(AdminService, admin, observe);
  // grpcHandlers registers Resync as a server-streaming handler: the cast only names that type.
  const streaming = handlers["resync"] as grpc.handleServerStreamingCall<unknown, unknown>;
  const keepCall: grpc.handleServerStreamingCall<unknown, unknown> = (call) => {
    serverCalls.push(call);
    streaming(call);
  };
  handlers["resync"] = keepCall as grpc.UntypedHandleCall;
  server = await startServiceServer(AdminService, handlers);
  client = new grpc.Client(server.address, grpc.credentials.createInsecure());
});

beforeEach(() => {
  observed.length = 0;
  serverCalls.length = 0;
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

/** Resolves with `promise`, or fails naming `what` after BOUND_MS. */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${BOUND_MS} ms`)), BOUND_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise and the function that resolves it. */
function signalled<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves when `signal` aborts, with its reason. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
}

/** Polls `condition` every `everyMs` until it holds. */
async function until(condition: () => boolean, what: string, everyMs = 5): Promise<void> {
  await within(
    (async () => {
      while (!condition()) await new Promise((resolve) => setTimeout(resolve, everyMs));
    })(),
    what,
  );
}

/** A report the observer got for `method`, once the call has ended. */
async function observedCall(method: string) {
  await until(() => observed.some((call) => call.method === method), `the ${method} report`);
  expect(observed.filter((call) => call.method === method)).toHaveLength(1);
  return observed.find((call) => call.method === method)!;
}

const MAX = (1n << 64n) - 1n;
/** The largest progress message: every count at its widest encoding. */
const WIDE_PROGRESS = { scanned: MAX, copied: MAX, removed: MAX, unchanged: MAX, primaryKeys: MAX, primaryScanned: MAX };

describe("a server stream cancelled while it waits for the client to read", () => {
  it("closes the generator, leaves no listener and is reported cancelled", async () => {
    const closed = signalled();
    let yielded = 0;
    resync = async function* () {
      try {
        for (;;) {
          yielded++;
          yield WIDE_PROGRESS;
        }
      } finally {
        closed.resolve();
      }
    };
    // A client that never reads, so HTTP/2 flow control soon stops the server's writes. (grpc-js's
    // own client keeps reading into an unbounded buffer whether or not anyone consumes it.)
    const session = http2.connect(`http://${server.address}`);
    session.on("error", () => {});
    onTestFinished(() => void session.destroy());
    const stream = session.request({
      ":method": "POST",
      ":path": `/${AdminService.typeName}/${AdminService.method.resync.name}`,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    // One uncompressed, empty ResyncRequest: a zero flag byte and a zero length.
    stream.end(Buffer.alloc(5));
    stream.pause();
    // Stalled: nothing yielded for a while (the server waits for its last write to reach the
    // connection before it asks for the next message).
    let seen = -1;
    await until(() => {
      const stalled = yielded > 0 && yielded === seen;
      seen = yielded;
      return stalled;
    }, "the server waiting for the client to read", 100);

    stream.close(http2.constants.NGHTTP2_CANCEL);
    await within(closed.promise, "the generator's finally block");
    expect(yielded).toBeGreaterThan(10);
    const call = serverCalls[0]!;
    expect(call.listenerCount("drain")).toBe(0);
    expect(call.listenerCount("cancelled")).toBe(0);
    const report = await observedCall("Resync");
    expect(report.outcome).toBe("cancelled");
    expect(report.error?.code).toBe("unavailable");
  });
});

describe("the handler's signal", () => {
  it("aborts when the caller cancels a unary call", async () => {
    const started = signalled();
    const reason = signalled<unknown>();
    backupStatus = async (_request, { signal }) => {
      started.resolve();
      const why = await aborted(signal);
      reason.resolve(why);
      throw why;
    };
    const { call, response } = unaryCall(client, AdminService.method.backupStatus, {});
    await within(started.promise, "the handler's start");
    call.cancel();
    expect((await rejection(response)).code).toBe(grpc.status.CANCELLED);
    const why = await within(reason.promise, "the signal's abort");
    expect(why).toBeInstanceOf(StoreError);
    expect((why as StoreError).code).toBe("unavailable");
    expect((await observedCall("BackupStatus")).outcome).toBe("cancelled");
  });

  it("aborts when a unary call's deadline passes, reported as deadline-exceeded", async () => {
    const reason = signalled<unknown>();
    backupStatus = async (_request, { signal }) => {
      const why = await aborted(signal);
      reason.resolve(why);
      throw why;
    };
    const error = await rejection(unaryCall(client, AdminService.method.backupStatus, {}, { timeoutMs: 300 }).response);
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect((await within(reason.promise, "the signal's abort")) as StoreError).toMatchObject({ code: "deadline-exceeded" });
    const report = await observedCall("BackupStatus");
    expect(report.outcome).toBe("failed");
    expect(report.error?.code).toBe("deadline-exceeded");
  });

  it("aborts when the caller cancels a server stream, and the generator is closed", async () => {
    const reason = signalled<unknown>();
    const closed = signalled();
    resync = async function* (_request, { signal }) {
      try {
        yield { scanned: 1n };
        reason.resolve(await aborted(signal));
      } finally {
        closed.resolve();
      }
    };
    const stream = serverStreamCall(client, AdminService.method.resync, {});
    stream.on("error", () => {});
    await new Promise((resolve) => stream.once("data", resolve));
    stream.cancel();
    expect(await within(reason.promise, "the signal's abort")).toBeInstanceOf(StoreError);
    await within(closed.promise, "the generator's finally block");
    expect((await observedCall("Resync")).outcome).toBe("cancelled");
  });

  it("does not abort after the call was answered", async () => {
    const signals: AbortSignal[] = [];
    backupStatus = async (_request, { signal }) => {
      signals.push(signal);
      return {};
    };
    resync = async function* (_request, { signal }) {
      signals.push(signal);
      yield { done: true };
    };
    await unaryCall(client, AdminService.method.backupStatus, {}).response;
    expect((await readAll(serverStreamCall(client, AdminService.method.resync, {}))).error).toBeUndefined();
    // grpc-js reports every call as cancelled once it is over; give that report time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(signals.map((signal) => signal.aborted)).toEqual([false, false]);
    expect(observed.map((call) => call.outcome)).toEqual(["ok", "ok"]);
  });
});
