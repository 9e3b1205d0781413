//! The KVStoreService handlers: check what only the server knows, call the store, return.
//! Name validation happens in the store; errors become statuses in `src/rpc/status.ts`.

import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import type { ServiceImpl } from "../rpc/service-definition.js";
import { invalidArgument } from "../store/errors.js";
import type { KVStore } from "../store/types.js";
import { formatPath, validateVersion } from "../store/validate.js";

export interface ServiceLimits {
  /** Largest value a Write accepts (SPEC §1). */
  readonly maxValueBytes: number;
}

/** 0 on the wire means "no version": the server assigns one. */
function versionOf(version: bigint): bigint | undefined {
  return version === 0n ? undefined : version;
}

export function kvStoreService(store: KVStore, limits: ServiceLimits): ServiceImpl<typeof KVStoreService> {
  return {
    async read(request, { deadline }) {
      return { value: await store.read(request, { deadline }) };
    },

    async write(request, { deadline }) {
      if (request.value.byteLength > limits.maxValueBytes) {
        throw invalidArgument(
          `Failed to write ${formatPath(request)}: value is ${request.value.byteLength} bytes; ` +
            `the largest accepted is ${limits.maxValueBytes} bytes (--max-value-bytes)`,
        );
      }
      const version = versionOf(request.version);
      validateVersion(version, request, "write");
      await store.write(request, request.value, { version, deadline });
      return {};
    },

    async remove(request, { deadline }) {
      const version = versionOf(request.version);
      validateVersion(version, request, "remove");
      await store.remove(request, { lazy: request.lazy, version, deadline });
      return {};
    },

    async list(request, { deadline }) {
      return { keys: await store.list(request, { deadline }) };
    },

    async listPage(request, { deadline }) {
      if (request.pageSize < 0) {
        throw invalidArgument(`Failed to list ${formatPath(request)}: page_size ${request.pageSize} is negative`);
      }
      return store.listPage(request, { pageSize: request.pageSize, pageToken: request.pageToken, deadline });
    },
  };
}
