// gRPC health (grpc.health.v1) and server reflection (grpc.reflection.v1) on a real server,
// queried with clients built by @grpc/proto-loader, as grpcurl or a load balancer would.
import { once } from "node:events";
import { createRequire } from "node:module";
import * as grpc from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/store/memory.js";
import { startTestServer, type TestServer } from "../support/server.js";

const LOADER_OPTIONS: Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const REFLECTION_PROTO = createRequire(import.meta.url).resolve(
  "@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto",
);

/** A client class from a proto file, e.g. `clientClass(path, "grpc.health.v1.Health")`. */
function clientClass(protoPath: string, serviceName: string): grpc.ServiceClientConstructor {
  let node: unknown = grpc.loadPackageDefinition(loadSync(protoPath, LOADER_OPTIONS));
  for (const part of serviceName.split(".")) node = (node as Record<string, unknown>)[part];
  return node as grpc.ServiceClientConstructor;
}

const HealthClient = clientClass(healthProtoPath, "grpc.health.v1.Health");
const ReflectionClient = clientClass(REFLECTION_PROTO, "grpc.reflection.v1.ServerReflection");

let server: TestServer;
const clients: grpc.Client[] = [];

function connect(Client: grpc.ServiceClientConstructor): grpc.Client {
  const client = new Client(server.address, grpc.credentials.createInsecure());
  clients.push(client);
  return client;
}

beforeAll(async () => {
  server = await startTestServer(new MemoryStore());
});

afterAll(async () => {
  for (const client of clients) client.close();
  await server?.close();
});

describe("health", () => {
  type CheckResponse = { status: string };

  function check(service: string): Promise<CheckResponse> {
    const client = connect(HealthClient) as unknown as {
      Check(request: { service: string }, options: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: CheckResponse) => void): void;
    };
    return new Promise((resolve, reject) =>
      client.Check({ service }, { deadline: Date.now() + 10_000 }, (error, response) =>
        error ? reject(error) : resolve(response!),
      ),
    );
  }

  it('answers SERVING for the server ("")', async () => {
    expect(await check("")).toEqual({ status: "SERVING" });
  });

  it("answers SERVING for tierkv.v1.KVStoreService", async () => {
    expect(await check("tierkv.v1.KVStoreService")).toEqual({ status: "SERVING" });
  });

  it("answers NOT_FOUND for a service it does not know", async () => {
    await expect(check("tierkv.v1.NoSuchService")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});

describe("reflection", () => {
  interface ReflectionResponse {
    message_response: string;
    list_services_response?: { service: { name: string }[] };
    file_descriptor_response?: { file_descriptor_proto: Buffer[] };
    error_response?: { error_code: number; error_message: string };
  }

  /** One ServerReflectionInfo stream; `ask` sends a request and waits for its response. */
  function openReflection(): { ask(request: Record<string, string>): Promise<ReflectionResponse>; end(): void } {
    const client = connect(ReflectionClient) as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse> };
    const stream = client.ServerReflectionInfo();
    return {
      async ask(request) {
        const next = once(stream, "data") as Promise<[ReflectionResponse]>;
        stream.write(request);
        return (await next)[0];
      },
      end: () => stream.end(),
    };
  }

  /** The descriptors of a `file_containing_symbol` answer. */
  function descriptors(response: ReflectionResponse): FileDescriptorProto[] {
    expect(response.message_response).toBe("file_descriptor_response");
    const files = response.file_descriptor_response!.file_descriptor_proto;
    expect(files.length).toBeGreaterThan(0);
    return files.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  }

  function serviceIn(files: FileDescriptorProto[], packageName: string, serviceName: string) {
    const file = files.find((f) => f.package === packageName && f.service.some((s) => s.name === serviceName));
    expect(file, `no descriptor declares ${packageName}.${serviceName}`).toBeDefined();
    return { file: file!, service: file!.service.find((s) => s.name === serviceName)! };
  }

  it("lists the store and health services, then describes the store service on the same stream", async () => {
    const reflection = openReflection();
    try {
      const listed = await reflection.ask({ list_services: "" });
      expect(listed.message_response).toBe("list_services_response");
      const names = listed.list_services_response!.service.map((s) => s.name);
      expect(names).toEqual(expect.arrayContaining(["tierkv.v1.KVStoreService", "grpc.health.v1.Health"]));

      const described = await reflection.ask({ file_containing_symbol: "tierkv.v1.KVStoreService" });
      const { file, service } = serviceIn(descriptors(described), "tierkv.v1", "KVStoreService");
      expect(file.name).toBe("tierkv/v1/kvstore.proto");
      expect(service.method.map((m) => m.name).sort()).toEqual(["List", "ListAllKeys", "ListPage", "Mutate", "Read", "Remove", "Txn", "Watch", "Write"]);
      const write = service.method.find((m) => m.name === "Write")!;
      expect([write.inputType, write.outputType]).toEqual([".tierkv.v1.WriteRequest", ".tierkv.v1.WriteResponse"]);
      // The request messages come with the service, so a tool can build calls from them.
      const writeRequest = file.messageType.find((m) => m.name === "WriteRequest");
      expect(writeRequest?.field.map((f) => f.name)).toEqual(
        expect.arrayContaining(["primary_namespace", "secondary_namespace", "key", "value", "version"]),
      );
    } finally {
      reflection.end();
    }
  });

  it("describes the health service", async () => {
    const reflection = openReflection();
    try {
      const described = await reflection.ask({ file_containing_symbol: "grpc.health.v1.Health" });
      const { service } = serviceIn(descriptors(described), "grpc.health.v1", "Health");
      expect(service.method.map((m) => m.name)).toContain("Check");
    } finally {
      reflection.end();
    }
  });

  it("answers NOT_FOUND for an unknown symbol", async () => {
    const reflection = openReflection();
    try {
      const response = await reflection.ask({ file_containing_symbol: "tierkv.v1.NoSuchService" });
      expect(response.message_response).toBe("error_response");
      expect(response.error_response!.error_code).toBe(grpc.status.NOT_FOUND);
    } finally {
      reflection.end();
    }
  });
});
