//! The KVStoreService handlers: check what only the server knows (limits), call the store,
//! translate. Names and versions are validated once, by the tiered store (`validKey` and friends
//! in `src/store/validate.ts`); errors become statuses in `src/rpc/status.ts`.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { ChangeType, KVStoreService, type MutationResultSchema, type TxnCheck as WireCheck, type TxnOperation as WireOperation } from "../../gen/tierkv/v1/kvstore_pb.js";
import { effectivePageSize, type Limits } from "../limits.js";
import type { HandlerContext, ServiceImpl } from "../rpc/service-definition.js";
import { toGrpcStatus } from "../rpc/status.js";
import { authorizeWatch, AuthorizedStore } from "../auth/authorized-store.js";
import { invalidArgument, StoreError } from "../store/errors.js";
import type { KVStore, KeyRef, MutationOptions, MutationOutcome, NamespaceRef, TxnCheck, TxnOperation } from "../store/types.js";
import { formatPath, validateNamespace } from "../store/validate.js";
import type { ChangeFeed, WatchEvent } from "../watch/change-feed.js";

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

/** The store a request addresses: the one it names, else the default store. */
function scoped<T extends { storeId: string }>(request: T): T & { storeId: string | undefined } {
  return { ...request, storeId: request.storeId === "" ? undefined : request.storeId };
}

function callOptions(context: HandlerContext): Pick<MutationOptions, "deadline" | "signal"> {
  return { deadline: context.deadline, signal: context.signal };
}

/**
 * A mutation's options: `fields` and the call's deadline, and its signal made only when something
 * reads it (a wait for the key's turn): an AbortController costs ~2 µs, a write rarely needs one.
 */
function mutationOptions<T extends MutationOptions>(context: HandlerContext, fields: T): T {
  return Object.defineProperty({ ...fields, deadline: context.deadline }, "signal", { enumerable: true, get: () => context.signal });
}

/** A mutation's reply: whether it applied and, if so, the version it was applied at. */
async function reply(mutation: (onVersion: (version: bigint) => void) => Promise<MutationOutcome>): Promise<{ applied: boolean; version: bigint }> {
  let version = 0n;
  const outcome = await mutation((v) => (version = v));
  return outcome === "applied" ? { applied: true, version } : { applied: false, version: 0n };
}

function toCheck(check: WireCheck): TxnCheck {
  const ref = scoped(check);
  switch (check.expect.case) {
    case "absent":
      return { ...ref, expect: "absent" };
    case "present":
      return { ...ref, expect: "present" };
    case "revision":
      return { ...ref, expect: check.expect.value };
    default:
      throw invalidArgument(`Failed to check ${formatPath(check)}: the check sets none of absent, present, revision`);
  }
}

function toOperation(operation: WireOperation): TxnOperation {
  // Only the key's fields: the wire message's own (its version among them) travel explicitly.
  const { storeId, primaryNamespace, secondaryNamespace, key } = scoped(operation);
  const ref = { storeId, primaryNamespace, secondaryNamespace, key };
  // A version and a revision travel when a chained instance mirrors its primary's outcome.
  const mirrored = operation.version === 0n ? {} : { version: operation.version };
  switch (operation.kind.case) {
    case "write": {
      const { value, revision } = operation.kind.value;
      return { ...ref, kind: "write", value, ...(revision !== 0n && { revision }), ...mirrored };
    }
    case "remove":
      return { ...ref, kind: "remove", ...mirrored };
    default:
      throw invalidArgument(`Failed to apply a transaction to ${formatPath(operation)}: the operation is neither a write nor a remove`);
  }
}

/** A watch event on the wire. */
function watchResponse(event: WatchEvent): MessageInitShape<typeof KVStoreService.method.watch.output> {
  if (event.kind === "progress") {
    const heads = event.heads === undefined ? {} : { heads: Object.fromEntries(event.heads) };
    return { event: { case: "progress", value: { sequence: event.sequence, pending: event.pending, timeMs: BigInt(event.time), ...heads } } };
  }
  const { change } = event;
  return {
    event: {
      case: "change",
      value: {
        storeId: change.storeId,
        sequence: change.seq,
        type: change.kind === "put" ? ChangeType.PUT : ChangeType.REMOVE,
        primaryNamespace: change.primaryNamespace,
        secondaryNamespace: change.secondaryNamespace,
        key: change.key,
        version: change.version,
        revision: change.revision,
        size: BigInt(change.size),
        ...(change.value !== undefined && { value: change.value }),
        superseded: change.superseded === true,
        commitTimeMs: BigInt(change.time),
      },
    },
  };
}

/**
 * `tiers` is the tiered store; each call reaches it through an `AuthorizedStore` for the caller,
 * which scopes every key to the caller's store and checks the caller's roles.
 */
export function kvStoreService(tiers: KVStore, limits: Limits, feed?: ChangeFeed): ServiceImpl<typeof KVStoreService> {
  const storeFor = (context: HandlerContext): KVStore => new AuthorizedStore(tiers, context.principal);
  const checkValueSize = (ref: KeyRef, value: Uint8Array): void => {
    if (value.byteLength > limits.maxValueBytes) {
      throw invalidArgument(
        `Failed to write ${formatPath(ref)}: value is ${value.byteLength} bytes; ` +
          `the largest accepted is ${limits.maxValueBytes} bytes (--max-value-bytes)`,
      );
    }
  };
  /** A batch (Mutate, Txn) is refused whole, before any work, when it exceeds the limits. */
  const checkBatch = (what: string, items: number, valueBytes: number): void => {
    if (items > limits.maxBatchItems) {
      throw invalidArgument(`${what} has ${items} items; the limit is ${limits.maxBatchItems} per request (--max-batch-items)`);
    }
    if (valueBytes > limits.maxBatchBytes) {
      throw invalidArgument(`${what} carries ${valueBytes} bytes of values; the limit is ${limits.maxBatchBytes} (--max-batch-bytes)`);
    }
  };
  // Write and Remove, and each mutation of Mutate, go through these two: one set of checks.
  const write = async (store: KVStore, ref: KeyRef, value: Uint8Array, wireVersion: bigint, context: HandlerContext, fields: MutationOptions): Promise<MutationOutcome> => {
    checkValueSize(ref, value);
    return store.write(ref, value, mutationOptions(context, { ...fields, version: versionOf(wireVersion) }));
  };
  const remove = async (store: KVStore, ref: KeyRef, lazy: boolean, wireVersion: bigint, context: HandlerContext, fields: MutationOptions): Promise<MutationOutcome> => {
    return store.remove(ref, mutationOptions(context, { ...fields, lazy, version: versionOf(wireVersion) }));
  };

  return {
    async read(request, context) {
      // The context itself carries deadline and signal: only a store that uses the signal (a remote
      // one) makes the call create it.
      return storeFor(context).readVersioned(scoped(request), context);
    },

    async write(request, context) {
      return reply((onVersion) => write(storeFor(context), scoped(request), request.value, request.version, context, { onVersion }));
    },

    async remove(request, context) {
      return reply((onVersion) => remove(storeFor(context), scoped(request), request.lazy, request.version, context, { onVersion }));
    },

    async mutate(request, context) {
      const valueBytes = request.mutations.reduce((sum, m) => sum + (m.kind.case === "write" ? m.kind.value.value.byteLength : 0), 0);
      checkBatch("Mutate", request.mutations.length, valueBytes);
      const store = storeFor(context);
      const outcomes = await Promise.allSettled(
        request.mutations.map((mutation) =>
          reply((onVersion) => {
            const ref = scoped(mutation);
            switch (mutation.kind.case) {
              case "write": {
                const { value, revision, exact } = mutation.kind.value;
                const mirror = { revision: revision === 0n ? undefined : revision, exact };
                return write(store, ref, value, mutation.version, context, { ...mirror, onVersion });
              }
              case "remove":
                return remove(store, ref, mutation.kind.value.lazy, mutation.version, context, { onVersion });
              default:
                return Promise.reject(invalidArgument(`Failed to mutate ${formatPath(mutation)}: the mutation is neither a write nor a remove`));
            }
          }),
        ),
      );
      return {
        results: outcomes.map((outcome): MessageInitShape<typeof MutationResultSchema> => {
          if (outcome.status === "fulfilled") return { code: 0, message: "", ...outcome.value };
          const status = toGrpcStatus(StoreError.from(outcome.reason));
          return { code: status.code, message: status.details };
        }),
      };
    },

    async txn(request, context) {
      const operations = request.operations.map(toOperation);
      const valueBytes = operations.reduce((sum, op) => sum + (op.kind === "write" ? op.value.byteLength : 0), 0);
      checkBatch("Txn", request.checks.length + operations.length, valueBytes);
      for (const op of operations) if (op.kind === "write") checkValueSize(op, op.value);
      const result = await storeFor(context).txn({
        checks: request.checks.map(toCheck),
        operations,
        version: versionOf(request.version),
        ...callOptions(context),
      });
      if (!result.succeeded) return { succeeded: false, failedCheck: result.failedCheck };
      return {
        succeeded: true,
        failedCheck: -1,
        results: result.outcomes.map((outcome, i) => ({ applied: outcome === "applied", revision: result.revisions[i], version: result.versions[i] })),
      };
    },

    async list(request, context) {
      const ns = scoped(request);
      // One more than allowed tells a namespace that is too large, without reading all of it.
      const keys = await storeFor(context).list(ns, { ...callOptions(context), limit: limits.maxListKeys + 1 });
      if (keys.length > limits.maxListKeys) {
        throw new StoreError(
          "failed-precondition",
          `Failed to list ${formatPath(ns)}: the namespace holds more than ${limits.maxListKeys} keys, ` +
            `the most List returns (--max-list-keys); walk it with ListPage`,
        );
      }
      return { keys };
    },

    async listPage(request, context) {
      checkPageSize(request.pageSize, request);
      return storeFor(context).listPage(scoped(request), { pageSize: request.pageSize, pageToken: request.pageToken, ...callOptions(context) });
    },

    async *watch(request, context) {
      if (feed === undefined) {
        throw new StoreError("failed-precondition", "this server's primary keeps no change log (an fs or remote primary): Watch needs a sqlite, postgres or memory primary");
      }
      if (request.allStores && request.storeId !== "") throw invalidArgument("Watch: all_stores and store_id exclude each other");
      if (!request.allStores && request.starts && Object.keys(request.starts).length > 0) throw invalidArgument("Watch: starts needs all_stores");
      const scope = authorizeWatch(context.principal, { storeId: request.storeId === "" ? undefined : request.storeId, allStores: request.allStores });
      const prefix = { primaryNamespace: request.primaryNamespace, secondaryNamespace: request.secondaryNamespace };
      validateNamespace({ storeId: scope.storeId, ...prefix }, "watch");
      const starts = new Map(Object.entries(request.starts));
      for (const [storeId, start] of starts) if (start === 0n) starts.delete(storeId);
      const events = feed.watch(
        {
          ...scope,
          start: request.startSequence,
          starts,
          values: request.values,
          ...(prefix.primaryNamespace !== "" && { primaryNamespace: prefix.primaryNamespace }),
          ...(prefix.secondaryNamespace !== "" && { secondaryNamespace: prefix.secondaryNamespace }),
        },
        context.signal,
      );
      try {
        for (let next = await events.next(); !next.done; ) {
          try {
            yield watchResponse(next.value);
          } catch (error) {
            // A stall the surface throws in goes on to the feed, which says where to resume.
            next = await events.throw(error);
            continue;
          }
          next = await events.next();
        }
      } finally {
        await events.return(undefined);
      }
    },

    async listAllKeys(request, context) {
      checkPageSize(request.pageSize);
      return storeFor(context).listAllKeys({
        storeId: request.storeId === "" ? undefined : request.storeId,
        allStores: request.allStores,
        pageToken: request.pageToken,
        limit: effectivePageSize(request.pageSize),
        ...callOptions(context),
      });
    },
  };
}
