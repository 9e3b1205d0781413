//! The admin client: resync of a server's backup tier, its backup status, store usage, snapshots.

import type * as grpc from "@grpc/grpc-js";
import { create, type MessageShape } from "@bufbuild/protobuf";
import {
  AdminService,
  type BackupStatusResponse,
  type ResyncResponse,
  type SnapshotResponse,
  type StoreUsageResponse,
} from "../../gen/tierkv/v1/admin_pb.js";
import { grpcClientConstructor } from "../rpc/service-definition.js";
import { fromGrpcError } from "../rpc/status.js";
import { DEFAULT_TIMEOUT_MS, openChannel, type ClientOptions } from "./client.js";

const AdminClientClass = grpcClientConstructor(AdminService);

type RawAdmin = {
  resync(request: unknown, metadata: grpc.Metadata): grpc.ClientReadableStream<ResyncResponse>;
  snapshot(request: unknown, metadata: grpc.Metadata): grpc.ClientReadableStream<SnapshotResponse>;
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

  /**
   * Streams a snapshot of the server's primary (admin role): chunks of a tierkv SQLite store file,
   * then a summary with its SHA-256 and counts per store. No deadline: a large store takes a while.
   */
  async *snapshot(): AsyncGenerator<SnapshotResponse, void, undefined> {
    const stream = (this.raw as unknown as RawAdmin).snapshot(create(AdminService.method.snapshot.input), this.metadata);
    try {
      for await (const part of stream) yield part as SnapshotResponse;
    } catch (error) {
      throw fromGrpcError(error as grpc.ServiceError, this.address);
    } finally {
      // A caller that stops reading (a full disk) stops the server's work too; no-op once ended.
      stream.cancel();
    }
  }

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

  /** The backup tier's policy, backlog of owed keys and divergence count. */
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
