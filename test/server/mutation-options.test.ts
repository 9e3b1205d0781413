// The options a KVStoreService mutation hands the store: the call's deadline, and its signal made
// only when the store reads it (a wait for the key's turn), yet always the call's own.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { MutateRequestSchema, WriteRequestSchema } from "../../gen/tierkv/v1/kvstore_pb.js";
import { OPEN_PRINCIPAL } from "../../src/auth/principal.js";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import type { HandlerContext } from "../../src/rpc/service-definition.js";
import { kvStoreService } from "../../src/server/kvstore-service.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { KeyRef, MutationOptions, MutationOutcome } from "../../src/store/types.js";

/** A context whose signal counts how often it was asked for. */
function countingContext(): { context: HandlerContext; reads: () => number; controller: AbortController } {
  const controller = new AbortController();
  let reads = 0;
  const context: HandlerContext = {
    principal: OPEN_PRINCIPAL,
    deadline: 1_900_000_000_000,
    get signal() {
      reads++;
      return controller.signal;
    },
    surface: "grpc",
    method: { service: "tierkv.v1.KVStoreService", name: "Write", type: "unary", surface: "grpc" },
  };
  return { context, reads: () => reads, controller };
}

/** A store that keeps the options of every write it is given, and does nothing else with them. */
class CapturingStore extends MemoryStore {
  readonly options: MutationOptions[] = [];
  override async write(_ref: KeyRef, _value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    this.options.push(options);
    return "applied";
  }
}

describe("mutation options", () => {
  it("carry the deadline, and the call's signal only when read", async () => {
    const store = new CapturingStore();
    const service = kvStoreService(store, DEFAULT_LIMITS);
    const { context, reads, controller } = countingContext();
    const ref = { primaryNamespace: "monitors", secondaryNamespace: "", key: "k" };
    await service.write(create(WriteRequestSchema, { ...ref, value: new Uint8Array([1]) }), context);
    await service.mutate(create(MutateRequestSchema, { mutations: [{ ...ref, kind: { case: "write", value: { value: new Uint8Array([2]) } } }] }), context);
    expect(reads()).toBe(0);
    for (const options of store.options) {
      expect(options.deadline).toBe(context.deadline);
      expect(options.signal).toBe(controller.signal);
      // A copy keeps it.
      expect({ ...options }.signal).toBe(controller.signal);
    }
    expect(reads()).toBe(2 * store.options.length);
  });
});
