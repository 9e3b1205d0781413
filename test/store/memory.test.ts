// The memory backend against the shared conformance suite.
import { MemoryStore } from "../../src/store/memory.js";
import { describeConformance } from "../conformance/kvstore-conformance.js";

describeConformance(
  "memory",
  async () => {
    const store = new MemoryStore();
    return { store, close: () => store.close() };
  },
  { pageOrder: "newest-created-first", durable: false },
);
