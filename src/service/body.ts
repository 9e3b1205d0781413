//! A request body, read and decoded with bounded effort on every surface: at most the surface's
//! byte limit (refused from its declared length without reading it, or as soon as the stream
//! passes it), decompressed up to the same limit, and decoded only once its fields are counted
//! (binary tags or JSON members, known or unknown, at every level; `requestFieldLimit`) and its
//! nesting capped. Unknown fields are then dropped: nothing re-encodes a request.

import type { IncomingMessage } from "node:http";
import { promisify } from "node:util";
import { brotliDecompress, gunzip, type InputType, type ZlibOptions } from "node:zlib";
import { fromBinary, fromJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { MAX_REQUEST_DEPTH, requestFieldLimit, type Limits } from "../limits.js";
import { invalidArgument, StoreError } from "../store/errors.js";

/** A body over its limit: `resource-exhausted`, and the surface's own answer (413 for VSS). */
export class BodyTooLarge extends StoreError {
  constructor(message: string) {
    super("resource-exhausted", message);
  }
}

/**
 * The request body, at most `limit` bytes. A declared length over it is refused before a byte is
 * read; a streamed body stops being read (and buffered) at the first chunk past it.
 */
export function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new BodyTooLarge(`the request body is ${declared} bytes; the limit is ${limit}`));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      if (size > limit) {
        request.off("data", onData);
        request.pause();
        chunks.length = 0;
        reject(new BodyTooLarge(`the request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    request.on("data", onData);
    request.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    request.once("error", reject);
    request.once("aborted", () => reject(new StoreError("cancelled", "the request was aborted")));
  });
}

const DECOMPRESS: Record<string, (input: InputType, options: ZlibOptions) => Promise<Buffer>> = {
  gzip: promisify(gunzip) as (input: InputType, options: ZlibOptions) => Promise<Buffer>,
  br: promisify(brotliDecompress) as (input: InputType, options: ZlibOptions) => Promise<Buffer>,
};

/** The encodings `decompress` reads (besides `identity`). */
export const ACCEPTED_ENCODINGS: readonly string[] = Object.keys(DECOMPRESS);

/**
 * `bytes` decompressed by `encoding` (`identity`, `gzip`, `br`), refused once the result would
 * pass `limit`: the limit holds for what is decoded, not what travelled. zlib works off the
 * event loop's thread and stops at the limit.
 */
export async function decompress(bytes: Uint8Array, encoding: string | undefined, limit: number): Promise<Uint8Array> {
  if (encoding === undefined || encoding === "" || encoding === "identity") return bytes;
  const inflate = DECOMPRESS[encoding.toLowerCase()];
  if (inflate === undefined) throw invalidArgument(`the request is compressed with "${encoding}"; accepted: ${ACCEPTED_ENCODINGS.join(", ")}, identity`);
  try {
    return await inflate(bytes, { maxOutputLength: limit });
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw new BodyTooLarge(`the request decompresses to more than ${limit} bytes`);
    throw invalidArgument(`the request is not valid ${encoding}: ${(error as Error).message}`);
  }
}

/** A request with more fields than `requestFieldLimit` allows, refused before it is decoded. */
export class TooManyFields extends StoreError {
  constructor(limits: Limits) {
    super(
      "invalid-argument",
      `the request has more than ${requestFieldLimit(limits)} fields, known or unknown, the most a request of ` +
        `${limits.maxBatchItems} batch items (--max-batch-items) may have: send fewer items per request, or fewer fields this server does not know`,
    );
  }
}

/** Per message, its fields that hold messages (one or repeated), by number: where counting descends. */
const messageFields = new WeakMap<DescMessage, ReadonlyMap<number, DescMessage>>();

function messageFieldsOf(schema: DescMessage): ReadonlyMap<number, DescMessage> {
  let fields = messageFields.get(schema);
  if (fields === undefined) {
    fields = new Map(
      schema.fields.flatMap((field): [number, DescMessage][] =>
        field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message") ? [[field.number, field.message]] : [],
      ),
    );
    messageFields.set(schema, fields);
  }
  return fields;
}

/**
 * Counts the fields of a binary message — every tag, known or unknown, in nested messages and
 * groups too — and throws TooManyFields past `requestFieldLimit(limits)`. protobuf-es builds a
 * message per repeated entry and steps over each unknown field: counted first, that work is
 * bounded by the limit, not by the body's size. A loop over the bytes that allocates nothing per
 * field, since every request passes through it. Malformed bytes throw, with protobuf-es's reasons.
 */
function checkFieldCount(schema: DescMessage, bytes: Uint8Array, limits: Limits): void {
  const limit = requestFieldLimit(limits);
  let pos = 0;
  let fields = 0;
  /** A varint's low 32 bits, as protobuf-es reads tags and lengths. */
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (pos >= bytes.length) throw new Error("premature EOF");
      const byte = bytes[pos++]!;
      if (shift < 32) value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value >>> 0;
    }
    throw new Error("invalid varint");
  };
  /** The fields up to `end`; `schema` is undefined inside an unknown group, `group` its number. */
  const count = (end: number, schema: DescMessage | undefined, depth: number, group?: number): void => {
    if (depth > MAX_REQUEST_DEPTH) throw new Error(`the message nests deeper than ${MAX_REQUEST_DEPTH} levels`);
    const nested = schema === undefined ? undefined : messageFieldsOf(schema);
    while (pos < end) {
      const tag = varint();
      const number = tag >>> 3;
      const wireType = tag & 7;
      if (number === 0 || wireType > WireType.Bit32) throw new Error(`illegal tag: field no ${number} wire type ${wireType}`);
      if (wireType === WireType.EndGroup) {
        if (number !== group) throw new Error("invalid end group tag");
        return;
      }
      if (++fields > limit) throw new TooManyFields(limits);
      if (wireType === WireType.Varint) varint();
      else if (wireType === WireType.Bit64) pos += 8;
      else if (wireType === WireType.Bit32) pos += 4;
      else if (wireType === WireType.StartGroup) count(end, undefined, depth + 1, number);
      else {
        const stop = varint() + pos;
        if (stop > end) throw new Error("premature EOF");
        const message = nested?.get(number);
        if (message !== undefined) count(stop, message, depth + 1);
        pos = stop;
      }
    }
    if (group !== undefined || pos > end) throw new Error("premature EOF");
  };
  count(bytes.length, schema, 0);
}

/**
 * A protobuf message of at most `requestFieldLimit(limits)` fields (TooManyFields beyond). Unknown
 * fields are skipped, not kept: nothing reads or re-encodes them, and they would cost memory.
 */
export function decodeBinary<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, limits: Limits): MessageShape<Desc> {
  try {
    checkFieldCount(schema, bytes, limits);
    return fromBinary(schema, bytes, { readUnknownFields: false, recursionLimit: MAX_REQUEST_DEPTH });
  } catch (error) {
    if (error instanceof TooManyFields) throw error;
    // protobuf-es's reasons ("premature EOF", "invalid varint", ...) help the caller and carry
    // nothing about the server.
    throw new StoreError("invalid-argument", `request is not a valid ${schema.typeName} message: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Refuses JSON nested deeper than MAX_REQUEST_DEPTH or with more object members (unknown ones
 * included) than `requestFieldLimit(limits)`, by one pass over the text, before JSON.parse builds
 * anything.
 */
function checkJsonShape(text: string, limits: Limits): void {
  const maxFields = requestFieldLimit(limits);
  let depth = 0;
  let members = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_REQUEST_DEPTH) throw invalidArgument(`the request nests deeper than ${MAX_REQUEST_DEPTH} levels`);
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    } else if (c === 0x3a) {
      if (++members > maxFields) throw new TooManyFields(limits);
    }
  }
}

/**
 * A message in protobuf's JSON form of at most `requestFieldLimit(limits)` members (TooManyFields
 * beyond). Unknown fields are ignored, as connect-es does by default, but counted: a body of
 * millions of them is refused before it is parsed.
 */
export function decodeJson<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, limits: Limits): MessageShape<Desc> {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  checkJsonShape(text, limits);
  try {
    return fromJsonString(schema, text.trim() === "" ? "{}" : text, { ignoreUnknownFields: true, recursionLimit: MAX_REQUEST_DEPTH });
  } catch (error) {
    throw new StoreError("invalid-argument", `request is not a valid ${schema.typeName} message: ${(error as Error).message}`, { cause: error });
  }
}
