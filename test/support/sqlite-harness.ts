//! A conformance harness around a SqliteStore in its own temp dir.

import { join } from "node:path";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { StoreUnderTest } from "../conformance/kvstore-conformance.js";
import { removeTempDirs, tempDir } from "./temp.js";

export async function openSqliteHarness(): Promise<StoreUnderTest<SqliteStore> & { readonly path: string }> {
  const path = join(tempDir(), "kv.db");
  let store = new SqliteStore(path);
  return {
    path,
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = new SqliteStore(path);
      return store;
    },
    async close() {
      await store.close();
      removeTempDirs();
    },
  };
}
