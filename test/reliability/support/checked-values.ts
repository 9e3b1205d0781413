//! Self-checking values for the crash and outage tests: a one-line header naming the key, the
//! writer and its sequence number, the body's length and its SHA-256, then the body. A value read
//! back proves where it came from (its tag) and that it is whole (not torn, not another key's).

import { createHash, randomBytes } from "node:crypto";

const MAGIC = "tierkv-checked-v1";
/** Longest header: magic, writer, sequence, length, 64 hex digits and a key path. */
const MAX_HEADER_BYTES = 1024;

/** Identifies one mutation of one writer: `writer.sequence`. */
export type Tag = string;

export interface CheckedValue {
  readonly tag: Tag;
  readonly value: Buffer;
}

/** A value for `path` written by `writer` as its `sequence`-th operation, with `bodyBytes` random bytes. */
export function makeValue(path: string, writer: number, sequence: number, bodyBytes: number): CheckedValue {
  const body = randomBytes(bodyBytes);
  const hash = createHash("sha256").update(body).digest("hex");
  const header = Buffer.from(`${MAGIC} ${writer} ${sequence} ${bodyBytes} ${hash} ${path}\n`);
  return { tag: `${writer}.${sequence}`, value: Buffer.concat([header, body]) };
}

/**
 * The tag of a value read back for `path`; throws (with what is wrong) when the value is torn,
 * truncated, corrupt or belongs to another key.
 */
export function tagOf(path: string, value: Uint8Array): Tag {
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const end = bytes.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
  if (end < 0) throw new Error(`no header (${bytes.byteLength} bytes, starting ${JSON.stringify(bytes.subarray(0, 40).toString("latin1"))})`);
  const fields = bytes.subarray(0, end).toString("utf8").split(" ");
  const [magic, writer, sequence, length, hash, ...rest] = fields;
  if (magic !== MAGIC || rest.length !== 1) throw new Error(`malformed header ${JSON.stringify(fields.join(" ").slice(0, 200))}`);
  if (rest[0] !== path) throw new Error(`value of ${rest[0]} (writer ${writer}, #${sequence}) stored under ${path}`);
  const body = bytes.subarray(end + 1);
  if (String(body.byteLength) !== length) throw new Error(`torn value ${writer}.${sequence}: body of ${body.byteLength} bytes, header says ${length}`);
  if (createHash("sha256").update(body).digest("hex") !== hash) throw new Error(`torn value ${writer}.${sequence}: body hash differs`);
  return `${writer}.${sequence}`;
}
