//! Protobuf wire-format surgery for the fuzzer: varints, tags, a top-level field scanner, and
//! mutators that turn a valid message into a broken (or oddly valid) one, driven by a seeded PRNG.

import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { Prng } from "./prng.js";

export const WIRE = { varint: 0, i64: 1, len: 2, startGroup: 3, endGroup: 4, i32: 5 } as const;

export function varint(value: bigint | number): Buffer {
  let v = BigInt(value);
  if (v < 0n) v &= (1n << 64n) - 1n;
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

export function tag(field: number, wireType: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wireType));
}

/** A length-delimited field. */
export function lenField(field: number, payload: Uint8Array): Buffer {
  return Buffer.concat([tag(field, WIRE.len), varint(payload.byteLength), payload]);
}

export interface WireField {
  readonly field: number;
  readonly wireType: number;
  /** Offset of the tag. */
  readonly start: number;
  /** Offset just after the field. */
  readonly end: number;
  /** Offset of the payload (after the tag, and after the length for LEN fields). */
  readonly payload: number;
}

function readVarint(bytes: Uint8Array, at: number): [bigint, number] | undefined {
  let value = 0n;
  for (let shift = 0n, i = at; i < bytes.length && shift < 70n; shift += 7n, i++) {
    value |= BigInt(bytes[i]! & 0x7f) << shift;
    if ((bytes[i]! & 0x80) === 0) return [value, i + 1];
  }
  return undefined;
}

/** The top-level fields of a well-formed message (groups excluded), or undefined. */
export function scanFields(bytes: Uint8Array): WireField[] | undefined {
  const fields: WireField[] = [];
  let at = 0;
  while (at < bytes.length) {
    const t = readVarint(bytes, at);
    if (t === undefined) return undefined;
    const [key, afterTag] = t;
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    let end: number;
    let payload = afterTag;
    switch (wireType) {
      case WIRE.varint: {
        const v = readVarint(bytes, afterTag);
        if (v === undefined) return undefined;
        end = v[1];
        break;
      }
      case WIRE.i64:
        end = afterTag + 8;
        break;
      case WIRE.i32:
        end = afterTag + 4;
        break;
      case WIRE.len: {
        const l = readVarint(bytes, afterTag);
        if (l === undefined) return undefined;
        payload = l[1];
        end = payload + Number(l[0]);
        break;
      }
      default:
        return undefined;
    }
    if (end > bytes.length) return undefined;
    fields.push({ field, wireType, start: at, end, payload });
    at = end;
  }
  return fields;
}

/** Bytes no strict UTF-8 decoder accepts. */
export const INVALID_UTF8: readonly Buffer[] = [
  Buffer.from([0xff]),
  Buffer.from([0xc0, 0x80]), // overlong NUL
  Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate
  Buffer.from([0xe2, 0x82]), // truncated sequence
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), // 5-byte form
  Buffer.concat([Buffer.from("key"), Buffer.from([0x80])]), // stray continuation byte
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
];

/** Paths of field numbers from `desc` down to a string field (messages nested up to `depth`). */
export function stringFieldPaths(desc: DescMessage, depth = 3): DescField[][] {
  const paths: DescField[][] = [];
  for (const field of desc.fields) {
    if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) paths.push([field]);
    if (field.fieldKind === "list" && field.listKind === "scalar" && field.scalar === ScalarType.STRING) paths.push([field]);
    const child = field.fieldKind === "message" ? field.message : field.fieldKind === "list" && field.listKind === "message" ? field.message : undefined;
    if (child !== undefined && depth > 1) for (const sub of stringFieldPaths(child, depth - 1)) paths.push([field, ...sub]);
  }
  return paths;
}

/** A message holding `payload` at the end of `path` (each step a LEN field). */
export function nestAt(path: readonly DescField[], payload: Uint8Array): Buffer {
  let bytes: Buffer = Buffer.from(payload);
  for (let i = path.length - 1; i >= 0; i--) bytes = lenField(path[i]!.number, bytes);
  return bytes;
}

/** Field numbers of `desc` (and a few it does not know). */
function someFieldNumber(desc: DescMessage, prng: Prng): number {
  if (desc.fields.length > 0 && prng.chance(0.8)) return prng.pick(desc.fields).number;
  return prng.pick([0, 15, 16, 99, 2047, 536_870_911]);
}

/** A huge length prefix: 2^31 .. 2^63 (and a few famous values). */
export function hugeLength(prng: Prng): bigint {
  return prng.pick([
    1n << 31n,
    (1n << 32n) - 1n,
    1n << 32n,
    (1n << 63n) - 1n,
    1n << 63n,
    (1n << 64n) - 1n,
    (1n << 31n) + prng.bigint(62) % ((1n << 63n) - (1n << 31n)),
  ]);
}

/** Each mutator takes a valid encoding of a message of `desc` and returns a mangled one. */
export type Mutator = (valid: Buffer, desc: DescMessage, prng: Prng) => Buffer;

export const MUTATORS: Record<string, Mutator> = {
  "bit flips": (valid, _desc, prng) => {
    const out = Buffer.from(valid.length === 0 ? prng.bytes(1) : valid);
    const flips = prng.int(1, 8);
    for (let i = 0; i < flips; i++) {
      const at = prng.int(0, out.length - 1);
      out[at]! ^= 1 << prng.int(0, 7);
    }
    return out;
  },
  truncation: (valid, _desc, prng) => valid.subarray(0, valid.length === 0 ? 0 : prng.int(0, valid.length - 1)),
  "duplicated field": (valid, _desc, prng) => {
    const fields = scanFields(valid);
    if (fields === undefined || fields.length === 0) return Buffer.concat([valid, valid]);
    const chosen = prng.pick(fields);
    const copy = valid.subarray(chosen.start, chosen.end);
    const times = prng.int(1, 4);
    return Buffer.concat([valid, ...Array.from({ length: times }, () => copy)]);
  },
  "wrong wire type": (valid, desc, prng) => {
    const fields = scanFields(valid);
    if (fields !== undefined && fields.length > 0 && prng.chance(0.6)) {
      // Keep the payload, change the tag's wire type.
      const chosen = prng.pick(fields);
      const wireType = prng.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== chosen.wireType));
      const oldTagLength = tag(chosen.field, chosen.wireType).length;
      return Buffer.concat([valid.subarray(0, chosen.start), tag(chosen.field, wireType), valid.subarray(chosen.start + oldTagLength)]);
    }
    // Append a known field with a wire type its declared type does not use, and a random payload.
    const field = someFieldNumber(desc, prng);
    return Buffer.concat([valid, tag(field, prng.pick([0, 1, 2, 3, 4, 5, 6, 7])), prng.bytes(prng.int(0, 12))]);
  },
  "huge length prefix": (valid, desc, prng) => {
    const fields = scanFields(valid)?.filter((f) => f.wireType === WIRE.len) ?? [];
    const huge = varint(hugeLength(prng));
    if (fields.length > 0 && prng.chance(0.5)) {
      const chosen = prng.pick(fields);
      const tagBytes = tag(chosen.field, WIRE.len);
      return Buffer.concat([valid.subarray(0, chosen.start), tagBytes, huge, valid.subarray(chosen.payload)]);
    }
    return Buffer.concat([valid, tag(someFieldNumber(desc, prng), WIRE.len), huge, prng.bytes(prng.int(0, 16))]);
  },
  "invalid UTF-8": (valid, desc, prng) => {
    const paths = stringFieldPaths(desc);
    if (paths.length === 0) return Buffer.concat([valid, lenField(1, prng.pick(INVALID_UTF8))]);
    const path = prng.pick(paths);
    const bad = prng.pick(INVALID_UTF8);
    const payload = prng.chance(0.5) ? Buffer.concat([Buffer.from(prng.string(prng.int(0, 8), "abcXYZ019_-")), bad]) : bad;
    const broken = nestAt(path, payload);
    return prng.chance(0.5) ? Buffer.concat([valid, broken]) : Buffer.concat([broken, valid]);
  },
  "varint overflow": (valid, desc, prng) => {
    // Eleven continuation bytes: longer than any 64-bit varint.
    const field = someFieldNumber(desc, prng);
    return Buffer.concat([valid, tag(field, WIRE.varint), Buffer.alloc(prng.int(10, 16), 0xff), Buffer.from([0x01])]);
  },
  "deep nesting": (valid, desc, prng) => {
    const depth = prng.int(64, 20_000);
    if (prng.chance(0.5)) {
      // Unknown start groups, never closed (or closed), skipped recursively by the decoder.
      const open = Buffer.alloc(depth, tag(99, WIRE.startGroup)[0]!);
      const close = prng.chance(0.5) ? Buffer.alloc(depth, tag(99, WIRE.endGroup)[0]!) : Buffer.alloc(0);
      return Buffer.concat([valid, tag(99, WIRE.startGroup), varint(0), open, close]);
    }
    // A message field nested inside itself `depth` times (as far as the schema's first LEN field goes).
    const field = desc.fields.find((f) => f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message"))?.number ?? 1;
    let bytes: Buffer = Buffer.alloc(0);
    for (let i = 0; i < Math.min(depth, 2000); i++) bytes = lenField(field, bytes);
    return Buffer.concat([valid, bytes]);
  },
  "spliced messages": (valid, _desc, prng) => {
    const cut = valid.length === 0 ? 0 : prng.int(0, valid.length);
    return Buffer.concat([valid.subarray(cut), prng.bytes(prng.int(0, 8)), valid.subarray(0, cut)]);
  },
  "field soup": (_valid, desc, prng) => {
    const parts: Buffer[] = [];
    const count = prng.int(1, 12);
    for (let i = 0; i < count; i++) {
      const field = someFieldNumber(desc, prng);
      const wireType = prng.pick([0, 1, 2, 5, 0, 2]);
      if (wireType === WIRE.varint) parts.push(tag(field, wireType), varint(prng.bigint(64)));
      else if (wireType === WIRE.i64) parts.push(tag(field, wireType), prng.bytes(8));
      else if (wireType === WIRE.i32) parts.push(tag(field, wireType), prng.bytes(4));
      else parts.push(lenField(field, prng.bytes(prng.int(0, 24))));
    }
    return Buffer.concat(parts);
  },
};
