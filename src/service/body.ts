//! A request body, read and decoded with bounded effort on every HTTP surface: at most the
//! surface's byte limit (refused from its declared length without reading it, or as soon as the
//! stream passes it), decompressed up to the same limit, decoded with unknown fields skipped
//! (binary) and JSON's nesting and member count capped before it is parsed.

import type { IncomingMessage } from "node:http";
import { promisify } from "node:util";
import { brotliDecompress, gunzip, type InputType, type ZlibOptions } from "node:zlib";
import { fromBinary, fromJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { type Limits } from "../limits.js";
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

/** Our messages nest a few levels; anything deeper is not a tierkv request. */
const RECURSION_LIMIT = 32;

/** A protobuf message. Unknown fields are skipped, not kept: nothing reads them and they cost memory. */
export function decodeBinary<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes, { readUnknownFields: false, recursionLimit: RECURSION_LIMIT });
  } catch (error) {
    // protobuf-es's reasons ("premature EOF", "invalid varint", ...) help the caller and carry
    // nothing about the server.
    throw new StoreError("invalid-argument", `request is not a valid ${schema.typeName} message: ${(error as Error).message}`, { cause: error });
  }
}

/** Most JSON object members a request may have: a few per batch item, and room for the rest. */
export function jsonMemberLimit(limits: Limits): number {
  return 16 * limits.maxBatchItems + 1024;
}

/**
 * Refuses JSON nested deeper than RECURSION_LIMIT or with more than `maxMembers` object members
 * (unknown ones included), by one pass over the text, before JSON.parse builds anything.
 */
function checkJsonShape(text: string, maxMembers: number): void {
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
      if (++depth > RECURSION_LIMIT) throw invalidArgument(`the request nests deeper than ${RECURSION_LIMIT} levels`);
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    } else if (c === 0x3a) {
      if (++members > maxMembers) throw invalidArgument(`the request has more than ${maxMembers} fields`);
    }
  }
}

/**
 * A message in protobuf's JSON form. Unknown fields are ignored, as connect-es does by default,
 * but counted: a body of millions of them is refused before it is parsed.
 */
export function decodeJson<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, maxMembers: number): MessageShape<Desc> {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  checkJsonShape(text, maxMembers);
  try {
    return fromJsonString(schema, text.trim() === "" ? "{}" : text, { ignoreUnknownFields: true, recursionLimit: RECURSION_LIMIT });
  } catch (error) {
    throw new StoreError("invalid-argument", `request is not a valid ${schema.typeName} message: ${(error as Error).message}`, { cause: error });
  }
}
