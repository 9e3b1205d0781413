//! Asks a server's grpc.health.v1 service for a service's status.

import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";

type HealthClient = grpc.Client & {
  check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: { status: string }) => void,
  ): void;
};

const HealthClientClass = (
  grpc.loadPackageDefinition(loadSync(protoPath, { enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials) => HealthClient } } };
  }
).grpc.health.v1.Health;

/** The serving status ("SERVING", "NOT_SERVING", ...) `address` reports for `service`. */
export async function healthStatus(address: string, service = ""): Promise<string> {
  const client = new HealthClientClass(address, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      client.check({ service }, { deadline: Date.now() + 5_000 }, (error, response) =>
        error ? reject(error) : resolve(response!.status),
      ),
    );
  } finally {
    client.close();
  }
}
