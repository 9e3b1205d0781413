//! A conformance harness around an FsStore in its own temp dir.

import { join } from "node:path";
import { FsStore, type FsStoreOptions } from "../../src/store/fs.js";
import type { StoreUnderTest } from "../conformance/kvstore-conformance.js";
import { removeTempDirs, tempDir } from "./temp.js";

/** A fresh data directory; `reopen` opens it again with layout detection (`auto`). */
export async function openFsHarness(options: FsStoreOptions = {}): Promise<StoreUnderTest & { readonly dir: string }> {
  const dir = join(tempDir(), "ldk-data");
  let store = await FsStore.open(dir, options);
  return {
    dir,
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = await FsStore.open(dir, { ...options, layout: "auto" });
      return store;
    },
    async close() {
      await store.close();
      removeTempDirs();
    },
  };
}
