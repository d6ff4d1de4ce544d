/**
 * Tensor elements as bytes: the binary tensor extension and gRPC raw contents (little-endian, row-major, no padding;
 * BYTES elements each a 4-byte length and their bytes), FP16, and gRPC's typed InferTensorContents. Pure.
 */

import type { Datatype, Element } from './tensor.js';
import { bad, expectation, INT_RANGES } from './tensor.js';

/** Bytes per element in the binary extension and gRPC raw contents (BYTES has a 4-byte length per element instead). */
const SIZES: Record<Exclude<Datatype, 'BYTES'>, number> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** The byte size of `count` elements of a fixed-size datatype (null for BYTES, whose elements carry their length). */
export function byteSize(datatype: Datatype, count: number): number | null {
  return datatype === 'BYTES' ? null : SIZES[datatype] * count;
}

/**
 * Decodes raw tensor bytes. `count` is the element count the shape needs (-1 when the shape has a -1 and the bytes
 * decide). BYTES elements are a 4-byte little-endian length and that many bytes each.
 */
export function decodeBinary(bytes: Buffer, datatype: Datatype, count: number, what: string): Element[] {
  if (datatype === 'BYTES') {
    const out: Element[] = [];
    let pos = 0;
    while (pos < bytes.length) {
      if (pos + 4 > bytes.length) throw bad(`${what}: BYTES data ends inside an element's 4-byte length`);
      const n = bytes.readUInt32LE(pos);
      pos += 4;
      if (pos + n > bytes.length) throw bad(`${what}: BYTES element ${out.length} says ${n} bytes but only ${bytes.length - pos} follow`);
      out.push(Buffer.from(bytes.subarray(pos, pos + n)));
      pos += n;
    }
    if (count >= 0 && out.length !== count) throw bad(`${what}: the shape holds ${count} element(s) but the BYTES data has ${out.length}`);
    return out;
  }
  const size = SIZES[datatype];
  if (bytes.length % size !== 0)
    throw bad(`${what}: ${bytes.length} bytes is not a whole number of ${datatype} elements (${size} bytes each)`);
  const n = bytes.length / size;
  if (count >= 0 && n !== count) {
    throw bad(`${what}: the shape holds ${count} element(s) (${count * size} bytes) but the data has ${bytes.length} bytes`);
  }
  const out = new Array<Element>(n);
  for (let i = 0, p = 0; i < n; i++, p += size) out[i] = readElement(bytes, p, datatype);
  return out;
}

function readElement(b: Buffer, p: number, datatype: Exclude<Datatype, 'BYTES'>): Element {
  switch (datatype) {
    case 'BOOL':
      return b[p] !== 0;
    case 'UINT8':
      return b[p]!;
    case 'INT8':
      return b.readInt8(p);
    case 'UINT16':
      return b.readUInt16LE(p);
    case 'INT16':
      return b.readInt16LE(p);
    case 'UINT32':
      return b.readUInt32LE(p);
    case 'INT32':
      return b.readInt32LE(p);
    case 'UINT64':
      return safeOrBig(b.readBigUInt64LE(p));
    case 'INT64':
      return safeOrBig(b.readBigInt64LE(p));
    case 'FP16':
      return halfToFloat(b.readUInt16LE(p));
    case 'FP32':
      return shortestFloat32(b.readFloatLE(p));
    case 'FP64':
      return b.readDoubleLE(p);
  }
}

/** A 64-bit integer as a number when it is exact as one, else the bigint. */
export function safeOrBig(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Encodes elements as raw tensor bytes (the inverse of decodeBinary); elements must already fit the datatype. */
export function encodeBinary(data: readonly Element[], datatype: Datatype): Buffer {
  if (datatype === 'BYTES') {
    const parts = data.map((e) => bytesOf(e));
    const out = Buffer.allocUnsafe(parts.reduce((n, p) => n + 4 + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.writeUInt32LE(p.length, pos);
      p.copy(out, pos + 4);
      pos += 4 + p.length;
    }
    return out;
  }
  const size = SIZES[datatype];
  const out = Buffer.allocUnsafe(size * data.length);
  for (let i = 0, p = 0; i < data.length; i++, p += size) writeElement(out, p, datatype, data[i]!);
  return out;
}

function writeElement(b: Buffer, p: number, datatype: Exclude<Datatype, 'BYTES'>, e: Element): void {
  switch (datatype) {
    case 'BOOL':
      b[p] = e ? 1 : 0;
      return;
    case 'UINT8':
      b.writeUInt8(Number(e), p);
      return;
    case 'INT8':
      b.writeInt8(Number(e), p);
      return;
    case 'UINT16':
      b.writeUInt16LE(Number(e), p);
      return;
    case 'INT16':
      b.writeInt16LE(Number(e), p);
      return;
    case 'UINT32':
      b.writeUInt32LE(Number(e), p);
      return;
    case 'INT32':
      b.writeInt32LE(Number(e), p);
      return;
    case 'UINT64':
      b.writeBigUInt64LE(BigInt(e as number | bigint), p);
      return;
    case 'INT64':
      b.writeBigInt64LE(BigInt(e as number | bigint), p);
      return;
    case 'FP16':
      b.writeUInt16LE(floatToHalf(Number(e)), p);
      return;
    case 'FP32':
      b.writeFloatLE(Number(e), p);
      return;
    case 'FP64':
      b.writeDoubleLE(Number(e), p);
  }
}

/** A BYTES element's bytes: raw bytes as they are, text as UTF-8. */
export function bytesOf(e: Element): Buffer {
  if (Buffer.isBuffer(e)) return e;
  return Buffer.from(typeof e === 'string' ? e : String(e), 'utf8');
}

/** IEEE 754 half precision -> number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** number -> IEEE 754 half precision, rounded to nearest even (numpy's float16 conversion). */
export function floatToHalf(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // rounds past the largest half (65504)
  if (a < 2 ** -24 / 2) return sign; // below half the smallest subnormal
  let exp = Math.floor(Math.log2(a));
  if (exp < -14) {
    // subnormal: a multiple of 2^-24
    const m = roundEven(a / 2 ** -24);
    return sign | m; // m may reach 1024, which is the smallest normal: still the right bits
  }
  if (2 ** exp > a) exp--; // log2 rounding at powers of two
  let m = roundEven((a / 2 ** exp - 1) * 1024);
  if (m === 1024) {
    m = 0;
    exp++;
  }
  if (exp > 15) return sign | 0x7c00;
  return sign | ((exp + 15) << 10) | m;
}

function roundEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The shortest decimal that reads back as the same float32 (Java's Float.toString; what the client sent as FP32). */
export function shortestFloat32(v: number): number {
  if (!Number.isFinite(v) || Number.isInteger(v)) return v;
  for (let p = 1; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// gRPC typed contents (InferTensorContents)

/** The InferTensorContents field holding a datatype's elements; FP16 has none (raw contents only, as KServe says). */
export function contentsField(datatype: Datatype): ContentsField | null {
  switch (datatype) {
    case 'BOOL':
      return 'bool_contents';
    case 'INT8':
    case 'INT16':
    case 'INT32':
      return 'int_contents';
    case 'INT64':
      return 'int64_contents';
    case 'UINT8':
    case 'UINT16':
    case 'UINT32':
      return 'uint_contents';
    case 'UINT64':
      return 'uint64_contents';
    case 'FP32':
      return 'fp32_contents';
    case 'FP64':
      return 'fp64_contents';
    case 'BYTES':
      return 'bytes_contents';
    case 'FP16':
      return null;
  }
}

export const CONTENTS_FIELDS = [
  'bool_contents',
  'int_contents',
  'int64_contents',
  'uint_contents',
  'uint64_contents',
  'fp32_contents',
  'fp64_contents',
  'bytes_contents',
] as const;
export type ContentsField = (typeof CONTENTS_FIELDS)[number];
/** InferTensorContents as @grpc/proto-loader gives it (64-bit integers as decimal strings, bytes as Buffers). */
export type Contents = Partial<Record<ContentsField, Array<boolean | number | string | Buffer>>>;

/** The elements of gRPC typed contents, checked against the datatype (ranges of the narrow integer types included). */
export function fromContents(contents: Contents | null | undefined, datatype: Datatype, what: string): Element[] {
  const field = contentsField(datatype);
  for (const f of CONTENTS_FIELDS) {
    if (f !== field && (contents?.[f]?.length ?? 0) > 0) {
      throw bad(`${what}: a ${datatype} tensor has ${f}; ${field === null ? 'FP16 data goes in raw_input_contents' : `use ${field}`}`);
    }
  }
  if (field === null) return [];
  const values = contents?.[field] ?? [];
  if (field === 'bytes_contents') return values.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8')));
  if (field === 'int64_contents' || field === 'uint64_contents') {
    return values.map((v, i) => {
      const big = BigInt(v as string | number);
      if (field === 'int64_contents' ? big < INT64_MIN || big > INT64_MAX : big < 0n || big > UINT64_MAX) {
        throw bad(`${what}: element ${i} is out of the ${datatype} range`);
      }
      return safeOrBig(big);
    });
  }
  if (field === 'int_contents' || field === 'uint_contents') {
    const [lo, hi] = INT_RANGES[datatype]!;
    return values.map((v, i) => {
      const n = Number(v);
      if (n < lo || n > hi) throw bad(`${what}: element ${i} (${n}) is not a valid ${datatype} value${expectation(datatype)}`);
      return n;
    });
  }
  if (field === 'fp32_contents') return values.map((v) => shortestFloat32(Number(v)));
  return values as Element[];
}

/** Elements as gRPC typed contents (FP16: null, it goes raw). 64-bit integers as decimal strings, exact. */
export function toContents(data: readonly Element[], datatype: Datatype): Contents | null {
  const field = contentsField(datatype);
  if (field === null) return null;
  if (field === 'bytes_contents') return { bytes_contents: data.map(bytesOf) };
  if (field === 'int64_contents' || field === 'uint64_contents') return { [field]: data.map((e) => String(e)) };
  if (field === 'bool_contents') return { bool_contents: data.map(Boolean) };
  return { [field]: data.map(Number) };
}
