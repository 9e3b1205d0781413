//! The KVStoreService handlers: check what only the server knows, call the store, return.
//! Name validation happens in the store; errors become statuses in `src/rpc/status.ts`.

import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import type { ServiceImpl } from "../rpc/service-definition.js";
import { invalidArgument, StoreError } from "../store/errors.js";
import { toGrpcStatus } from "../rpc/status.js";
import { decodeKeyCursor, encodeKeyCursor } from "../store/page-token.js";
import { effectivePageSize, type KVStore, type KeyRef, type NamespaceRef } from "../store/types.js";
import { formatPath, validateVersion } from "../store/validate.js";

export interface ServiceLimits {
  /** Largest value a Write accepts (SPEC §1). */
  readonly maxValueBytes: number;
}

/** 0 on the wire means "no version": the server assigns one. */
function versionOf(version: bigint): bigint | undefined {
  return version === 0n ? undefined : version;
}

function checkPageSize(pageSize: number, ns?: NamespaceRef): void {
  if (pageSize < 0) {
    const what = ns === undefined ? "all keys" : formatPath(ns);
    throw invalidArgument(`Failed to list ${what}: page_size ${pageSize} is negative`);
  }
}

export function kvStoreService(store: KVStore, limits: ServiceLimits): ServiceImpl<typeof KVStoreService> {
  // Write and Remove, and each mutation of Mutate, go through these two: one set of checks.
  const write = async (ref: KeyRef, value: Uint8Array, wireVersion: bigint, deadline: number | undefined): Promise<void> => {
    if (value.byteLength > limits.maxValueBytes) {
      throw invalidArgument(
        `Failed to write ${formatPath(ref)}: value is ${value.byteLength} bytes; ` +
          `the largest accepted is ${limits.maxValueBytes} bytes (--max-value-bytes)`,
      );
    }
    const version = versionOf(wireVersion);
    validateVersion(version, ref, "write");
    await store.write(ref, value, { version, deadline });
  };
  const remove = async (ref: KeyRef, lazy: boolean, wireVersion: bigint, deadline: number | undefined): Promise<void> => {
    const version = versionOf(wireVersion);
    validateVersion(version, ref, "remove");
    await store.remove(ref, { lazy, version, deadline });
  };

  return {
    async read(request, { deadline }) {
      return store.readVersioned(request, { deadline });
    },

    async write(request, { deadline }) {
      await write(request, request.value, request.version, deadline);
      return {};
    },

    async remove(request, { deadline }) {
      await remove(request, request.lazy, request.version, deadline);
      return {};
    },

    async mutate(request, { deadline }) {
      const outcomes = await Promise.allSettled(
        request.mutations.map((mutation) => {
          switch (mutation.kind.case) {
            case "write":
              return write(mutation, mutation.kind.value.value, mutation.version, deadline);
            case "remove":
              return remove(mutation, mutation.kind.value.lazy, mutation.version, deadline);
            default:
              return Promise.reject(invalidArgument(`Failed to mutate ${formatPath(mutation)}: the mutation is neither a write nor a remove`));
          }
        }),
      );
      return {
        results: outcomes.map((outcome) => {
          if (outcome.status === "fulfilled") return { code: 0, message: "" };
          const status = toGrpcStatus(StoreError.from(outcome.reason));
          return { code: status.code, message: status.details };
        }),
      };
    },

    async list(request, { deadline }) {
      return { keys: await store.list(request, { deadline }) };
    },

    async listPage(request, { deadline }) {
      checkPageSize(request.pageSize, request);
      return store.listPage(request, { pageSize: request.pageSize, pageToken: request.pageToken, deadline });
    },

    async listAllKeys(request, { deadline }) {
      checkPageSize(request.pageSize);
      const limit = effectivePageSize(request.pageSize);
      const after = request.pageToken === "" ? undefined : decodeKeyCursor(request.pageToken);
      const keys = await store.listAllKeys({ after, limit, deadline });
      const last = keys.at(-1);
      return { keys, nextPageToken: keys.length === limit && last ? encodeKeyCursor(last) : "" };
    },
  };
}
