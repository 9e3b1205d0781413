//! The KVStoreService handlers: check what only the server knows, call the store, return.
//! Name validation happens in the store; errors become statuses in `src/rpc/status.ts`.

import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import type { ServiceImpl } from "../rpc/service-definition.js";
import { invalidArgument } from "../store/errors.js";
import { decodeKeyCursor, encodeKeyCursor } from "../store/page-token.js";
import { effectivePageSize, type KVStore, type NamespaceRef } from "../store/types.js";
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
  return {
    async read(request, { deadline }) {
      return store.readVersioned(request, { deadline });
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
