//! A minimal protobuf wire codec for the benchmark's hand-encoded messages (the raw gRPC ceiling
//! and the VSS driver): varints, length-delimited fields and a top-level field scanner. No tierkv
//! code and no generated code, so what it costs is next to nothing and the same for every target.

export function varint(value: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(value));
  const bytes: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (v > 0n);
  return Buffer.from(bytes);
}

export const tag = (field: number, wireType: number): Buffer => varint((field << 3) | wireType);
export const varintField = (field: number, value: number | bigint): Buffer => Buffer.concat([tag(field, 0), varint(value)]);
export const bytesField = (field: number, value: Uint8Array | string): Buffer => {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  return Buffer.concat([tag(field, 2), varint(bytes.length), bytes]);
};

/** Reads a varint at `offset`: [value (as a bigint, so int64 survives), next offset]. */
export function readVarint(buffer: Uint8Array, offset: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buffer[offset++];
    if (byte === undefined) throw new Error("truncated varint");
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value, offset];
    shift += 7n;
  }
}

export interface ScannedField {
  readonly field: number;
  /** Varint fields: the value. */
  readonly value?: bigint;
  /** Length-delimited fields: the payload (a view). */
  readonly bytes?: Buffer;
}

/** The top-level fields of an encoded message, in order. */
export function scan(buffer: Buffer): ScannedField[] {
  const fields: ScannedField[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    let key: bigint;
    [key, offset] = readVarint(buffer, offset);
    const field = Number(key >> 3n);
    switch (Number(key & 7n)) {
      case 0: {
        let value: bigint;
        [value, offset] = readVarint(buffer, offset);
        fields.push({ field, value });
        break;
      }
      case 1:
        offset += 8;
        fields.push({ field });
        break;
      case 5:
        offset += 4;
        fields.push({ field });
        break;
      case 2: {
        let length: bigint;
        [length, offset] = readVarint(buffer, offset);
        const end = offset + Number(length);
        fields.push({ field, bytes: buffer.subarray(offset, end) });
        offset = end;
        break;
      }
      default:
        throw new Error(`unsupported wire type ${key & 7n}`);
    }
  }
  return fields;
}
