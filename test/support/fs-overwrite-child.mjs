// Child process of the fs backend's kill -9 test: overwrites one key of an FsStore (the built
// dist/) in a loop until killed, and prints "acked <n>" once write n has resolved.
//
// Value format (self-checking; test/store/fs.test.ts checks it):
//   "TKVCRASH" | n: u64 BE | body length: u32 BE | fill byte: u32 BE | sha256(body) | body
// where the body is `length` copies of the fill byte, about 1 MiB, its length varying with n.
import { createHash } from "node:crypto";
import { FsStore } from "../../dist/src/store/fs.js";

const [dir, startArg] = process.argv.slice(2);
const store = await FsStore.open(dir);
const ref = { primaryNamespace: "monitors", secondaryNamespace: "", key: "crash_key" };

function valueOf(n) {
  const length = 1024 * 1024 + ((n * 7919) % 65536);
  const fill = (n % 251) + 1;
  const body = Buffer.alloc(length, fill);
  const header = Buffer.alloc(8 + 8 + 4 + 4 + 32);
  header.write("TKVCRASH", 0, "latin1");
  header.writeBigUInt64BE(BigInt(n), 8);
  header.writeUInt32BE(length, 16);
  header.writeUInt32BE(fill, 20);
  createHash("sha256").update(body).digest().copy(header, 24);
  return Buffer.concat([header, body]);
}

for (let n = Number(startArg ?? 0) + 1; ; n++) {
  await store.write(ref, valueOf(n));
  process.stdout.write(`acked ${n}\n`);
}
