// The memory backend against the shared conformance suite and the backup-ledger contract.
import { MemoryStore } from "../../src/store/memory.js";
import { describeBackupLedger, describeChangeLog, describeConformance } from "../conformance/kvstore-conformance.js";

const openMemory = async () => {
  const store = new MemoryStore();
  return { store, close: () => store.close() };
};

describeConformance("memory", openMemory, { pageOrder: "newest-created-first", durable: false });
describeBackupLedger("memory", openMemory);
describeChangeLog("memory", openMemory);
