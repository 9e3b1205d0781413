//! The admin client: resync of a server's backup tier and its backup status.

import type * as grpc from "@grpc/grpc-js";
import { create, type MessageShape } from "@bufbuild/protobuf";
import { AdminService, type BackupStatusResponse, type ResyncResponse, type StoreUsageResponse } from "../../gen/tierkv/v1/admin_pb.js";
import { grpcClientConstructor } from "../rpc/service-definition.js";
import { fromGrpcError } from "../rpc/status.js";
import { DEFAULT_TIMEOUT_MS, openChannel, type ClientOptions } from "./client.js";

const AdminClientClass = grpcClientConstructor(AdminService);

type RawAdmin = {
  resync(request: unknown, metadata: grpc.Metadata): grpc.ClientReadableStream<ResyncResponse>;
  backupStatus(
    request: unknown,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: BackupStatusResponse) => void,
  ): grpc.ClientUnaryCall;
  storeUsage(
    request: unknown,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: StoreUsageResponse) => void,
  ): grpc.ClientUnaryCall;
};

/** Talks to a server's AdminService (see proto/tierkv/v1/admin.proto). */
export class TierkvAdminClient {
  private readonly raw: grpc.Client;
  private readonly metadata: grpc.Metadata;
  private readonly timeoutMs: number;
  readonly address: string;

  constructor(options: ClientOptions) {
    this.address = options.address;
    ({ raw: this.raw, metadata: this.metadata } = openChannel(AdminClientClass, options));
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Starts a resync of the server's backup from its primary and yields progress until the last
   * message (`done: true`) with the final counts. No deadline: a large store takes a while.
   */
  async *resync(): AsyncGenerator<MessageShape<typeof AdminService.method.resync.output>, void, undefined> {
    const stream = (this.raw as unknown as RawAdmin).resync(create(AdminService.method.resync.input), this.metadata);
    try {
      for await (const progress of stream) yield progress as ResyncResponse;
    } catch (error) {
      throw fromGrpcError(error as grpc.ServiceError, this.address);
    }
  }

  /** The backup tier's policy, backlog of owed keys and divergence count. */
  /** Keys and value bytes one store holds (admin role). */
  /** A store's usage; with `recount`, counted from the data, the usage record corrected and its drift reported. */
  storeUsage(storeId: string, recount = false): Promise<StoreUsageResponse> {
    const request = create(AdminService.method.storeUsage.input, { storeId, recount });
    return new Promise((resolve, reject) =>
      (this.raw as unknown as RawAdmin).storeUsage(
        request,
        this.metadata,
        { deadline: Date.now() + this.timeoutMs },
        (error, response) => (error ? reject(fromGrpcError(error, this.address)) : resolve(response!)),
      ),
    );
  }

  backupStatus(): Promise<BackupStatusResponse> {
    const request = create(AdminService.method.backupStatus.input);
    return new Promise((resolve, reject) =>
      (this.raw as unknown as RawAdmin).backupStatus(
        request,
        this.metadata,
        { deadline: Date.now() + this.timeoutMs },
        (error, response) => (error ? reject(fromGrpcError(error, this.address)) : resolve(response!)),
      ),
    );
  }

  close(): void {
    this.raw.close();
  }
}
