//! gRPC server reflection (v1 and v1alpha) over our own descriptors (from protobuf-es) and
//! `grpc.health.v1`'s, so `buf curl --reflect` / grpcurl can call health and list its methods.

import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { file_tierkv_v1_admin } from "../../gen/tierkv/v1/admin_pb.js";
import { file_tierkv_v1_kvstore } from "../../gen/tierkv/v1/kvstore_pb.js";

/**
 * `grpc/health/v1/health.proto` (the file grpc-health-check serves) as a descriptor. Written out
 * because proto-loader's descriptor of it names types relatively and its map entry `Statuses`
 * (Go's protodesc wants `StatusesEntry`), so `buf curl` could not link it and answered
 * `failed to find service named "grpc.health.v1.Health"`.
 */
const HEALTH_FILE = create(FileDescriptorProtoSchema, {
  name: "grpc/health/v1/health.proto",
  package: "grpc.health.v1",
  syntax: "proto3",
  messageType: [
    { name: "HealthCheckRequest", field: [{ name: "service", jsonName: "service", number: 1, label: Label.OPTIONAL, type: Type.STRING }] },
    {
      name: "HealthCheckResponse",
      field: [{ name: "status", jsonName: "status", number: 1, label: Label.OPTIONAL, type: Type.ENUM, typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus" }],
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
    { name: "HealthListRequest" },
    {
      name: "HealthListResponse",
      field: [{ name: "statuses", jsonName: "statuses", number: 1, label: Label.REPEATED, type: Type.MESSAGE, typeName: ".grpc.health.v1.HealthListResponse.StatusesEntry" }],
      nestedType: [
        {
          name: "StatusesEntry",
          field: [
            { name: "key", jsonName: "key", number: 1, label: Label.OPTIONAL, type: Type.STRING },
            { name: "value", jsonName: "value", number: 2, label: Label.OPTIONAL, type: Type.MESSAGE, typeName: ".grpc.health.v1.HealthCheckResponse" },
          ],
          options: { mapEntry: true },
        },
      ],
    },
  ],
  service: [
    {
      name: "Health",
      method: [
        { name: "Check", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse" },
        { name: "List", inputType: ".grpc.health.v1.HealthListRequest", outputType: ".grpc.health.v1.HealthListResponse" },
        { name: "Watch", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse", serverStreaming: true },
      ],
    },
  ],
});

/** Registers the reflection service (v1 and v1alpha) describing tierkv.v1 and grpc.health.v1. */
export function addReflection(server: Server): void {
  const encode = (file: typeof HEALTH_FILE): Buffer => Buffer.from(toBinary(FileDescriptorProtoSchema, file));
  // @grpc/reflection reads `fileDescriptorProtos` from every entry of a proto-loader package
  // definition; these two entries are all it needs.
  const packageDefinition = {
    "grpc.health.v1": { fileDescriptorProtos: [encode(HEALTH_FILE)] },
    [file_tierkv_v1_kvstore.proto.package]: { fileDescriptorProtos: [file_tierkv_v1_kvstore, file_tierkv_v1_admin].map((file) => encode(file.proto)) },
  };
  new ReflectionService(packageDefinition as unknown as ConstructorParameters<typeof ReflectionService>[0]).addToServer(server);
}
