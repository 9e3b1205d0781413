//! gRPC server reflection over our own descriptors (from protobuf-es) and the health service's.

import type { Server } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { file_tierkv_v1_admin } from "../../gen/tierkv/v1/admin_pb.js";
import { file_tierkv_v1_kvstore } from "../../gen/tierkv/v1/kvstore_pb.js";

/** Registers the reflection service (v1 and v1alpha) describing tierkv.v1 and grpc.health.v1. */
export function addReflection(server: Server): void {
  const ours = [file_tierkv_v1_kvstore, file_tierkv_v1_admin].map((file) =>
    Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)),
  );
  // @grpc/reflection reads `fileDescriptorProtos` from any entry of a proto-loader package
  // definition, so our descriptor joins the health proto's as one more entry.
  const packageDefinition = {
    ...loadSync(healthProtoPath),
    [file_tierkv_v1_kvstore.proto.package]: { fileDescriptorProtos: ours },
  };
  const definition = packageDefinition as ConstructorParameters<typeof ReflectionService>[0];
  new ReflectionService(definition).addToServer(server);
}
