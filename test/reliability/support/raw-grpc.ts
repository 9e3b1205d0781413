//! A grpc-js client that sends request bytes exactly as given (pass-through serializers) with any
//! `authorization` header, for unary and server-streaming methods, and reports the final status.

import * as grpc from "@grpc/grpc-js";

/** Every fuzz call's deadline: a call without a status by then is a hang. */
export const CALL_DEADLINE_MS = 5_000;

export interface RawOutcome {
  readonly code: grpc.status;
  readonly details: string;
  /** The response messages (one for a unary call that succeeded). */
  readonly messages: Buffer[];
}

const identity = (buffer: Buffer): Buffer => buffer;

export class RawGrpc {
  private readonly client: grpc.Client;

  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      // Over-size requests must reach the server, which is what refuses them.
      "grpc.max_send_message_length": -1,
      "grpc.max_receive_message_length": 16 * 1024 * 1024,
    });
  }

  private metadata(authorization: string | undefined): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (authorization !== undefined) metadata.set("authorization", authorization);
    return metadata;
  }

  unary(path: string, request: Buffer, authorization: string | undefined): Promise<RawOutcome> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(path, identity, identity, request, this.metadata(authorization), { deadline: Date.now() + CALL_DEADLINE_MS }, (error, response) => {
        if (error) resolve({ code: error.code, details: error.details, messages: [] });
        else resolve({ code: grpc.status.OK, details: "", messages: [response!] });
      });
    });
  }

  /** `deadlineMs`: a Watch stays open until its deadline; fuzzing gives it a short one. */
  serverStream(path: string, request: Buffer, authorization: string | undefined, deadlineMs = CALL_DEADLINE_MS): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const messages: Buffer[] = [];
      const call = this.client.makeServerStreamRequest(path, identity, identity, request, this.metadata(authorization), { deadline: Date.now() + deadlineMs });
      call.on("data", (message: Buffer) => messages.push(message));
      // An error event comes with the status; listening to it keeps it from being thrown.
      call.on("error", () => {});
      call.on("status", (status: grpc.StatusObject) => resolve({ code: status.code, details: status.details, messages }));
    });
  }

  close(): void {
    this.client.close();
  }
}

/** `INVALID_ARGUMENT` for 3, and so on. */
export function statusName(code: number): string {
  return grpc.status[code] ?? `code ${code}`;
}
