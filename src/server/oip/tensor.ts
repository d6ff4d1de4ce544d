/**
 * Open Inference Protocol (KServe v2) tensors: datatypes, shapes and element checks, and the conversions between
 * JSON data (flat or nested), the binary tensor extension's little-endian bytes and gRPC's typed contents. Pure: no
 * I/O, every input is checked and every failure is a one-line BAD_REQUEST that names the tensor, so it can be fuzzed.
 */

import { MarError } from '../../errors.js';

/** The v2 datatypes (KServe's "Tensor Data Types"; BF16 is not in KServe's list). */
export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

/**
 * One element: a number (INT64/UINT64 outside ±2^53 as a bigint, from binary or gRPC data), a boolean (BOOL), a string
 * (BYTES given as JSON text) or raw bytes (BYTES from the binary extension or gRPC).
 */
export type Element = number | bigint | boolean | string | Buffer;

/** A parameter value (`$parameter` in KServe's spec; gRPC's InferParameter). */
export type ParamValue = string | number | boolean;
export type Parameters = Record<string, ParamValue>;

/** A checked tensor: `data` is flat, row-major, and has exactly as many elements as `shape` says. */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  parameters?: Parameters;
  data: Element[];
}

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

const INT_RANGES: Partial<Record<Datatype, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
};
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** A limit on elements per tensor, so a shape like [1e9, 1e9] is refused before anything is allocated. */
export const MAX_ELEMENTS = 2 ** 31 - 1;

const bad = (message: string): MarError => new MarError('BAD_REQUEST', message);

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && (DATATYPES as readonly string[]).includes(value);
}

/** A datatype from a request, or BAD_REQUEST naming the ones that exist. */
export function checkDatatype(value: unknown, what: string): Datatype {
  if (isDatatype(value)) return value;
  throw bad(`${what}: datatype ${JSON.stringify(value)} is not one of ${DATATYPES.join(', ')}`);
}

/**
 * A shape from a request: an array of integers >= 0, with at most one -1 (a dimension numpy's reshape infers from
 * the element count; TorchServe's KServe examples send `[-1]`). Returns it as given; see resolveShape.
 */
export function checkShape(value: unknown, what: string): number[] {
  if (!Array.isArray(value)) throw bad(`${what}: shape must be an array of integers, e.g. [1, 3], got ${JSON.stringify(value)}`);
  let wildcards = 0;
  for (const d of value) {
    if (d === -1) wildcards++;
    else if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw bad(`${what}: shape ${JSON.stringify(value)} has ${JSON.stringify(d)}; dimensions are integers >= 0 (one may be -1)`);
    }
  }
  if (wildcards > 1) throw bad(`${what}: shape ${JSON.stringify(value)} has more than one -1`);
  return value as number[];
}

/** The element count of a shape without -1 (1 for the scalar shape []). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The shape with its -1 replaced so that it holds `count` elements; BAD_REQUEST when `count` does not fit it. */
export function resolveShape(shape: readonly number[], count: number, what: string): number[] {
  const i = shape.indexOf(-1);
  if (i < 0) {
    const n = elementCount(shape);
    if (n !== count) throw bad(`${what}: shape ${JSON.stringify(shape)} holds ${n} element(s) but the data has ${count}`);
    return [...shape];
  }
  const rest = elementCount(shape.filter((_, k) => k !== i));
  if (rest === 0 ? count !== 0 : count % rest !== 0) {
    throw bad(`${what}: ${count} element(s) cannot fill shape ${JSON.stringify(shape)}`);
  }
  const out = [...shape];
  out[i] = rest === 0 ? 0 : count / rest;
  return out;
}

/** The element count a shape needs before its data is read (a -1 gives no count: -1 returned). */
export function expectedCount(shape: readonly number[], what: string): number {
  if (shape.includes(-1)) return -1;
  const n = elementCount(shape);
  if (n > MAX_ELEMENTS) throw bad(`${what}: shape ${JSON.stringify(shape)} holds ${n} elements, more than ${MAX_ELEMENTS}`);
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON data

/** Checks one JSON element against the datatype; returns it (numbers stay numbers). */
function jsonElement(v: unknown, datatype: Datatype, what: string, index: number): Element {
  switch (datatype) {
    case 'BOOL':
      if (typeof v === 'boolean') return v;
      break;
    case 'BYTES':
      if (typeof v === 'string') return v;
      break;
    case 'FP16':
    case 'FP32':
    case 'FP64':
      if (typeof v === 'number') return v;
      break;
    case 'INT64':
      if (typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 63) && v <= 2 ** 63) return v;
      break;
    case 'UINT64':
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 2 ** 64) return v;
      break;
    default: {
      const [lo, hi] = INT_RANGES[datatype]!;
      if (typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi) return v;
    }
  }
  throw bad(`${what}: element ${index} (${JSON.stringify(v)}) is not a valid ${datatype} value${expectation(datatype)}`);
}

function expectation(datatype: Datatype): string {
  if (datatype === 'BOOL') return ' (true or false)';
  if (datatype === 'BYTES') return ' (a string)';
  if (datatype.startsWith('FP')) return ' (a number)';
  if (datatype === 'INT64' || datatype === 'UINT64') return ` (an integer${datatype === 'UINT64' ? ' >= 0' : ''})`;
  const [lo, hi] = INT_RANGES[datatype]!;
  return ` (an integer from ${lo} to ${hi})`;
}

/**
 * Flattens JSON tensor data (flat, or nested in row-major order) and checks every element against the datatype.
 * Nested data must be rectangular (every array at one depth has the same length, leaves only at the last depth).
 */
export function flattenJsonData(data: unknown, datatype: Datatype, what: string): Element[] {
  if (!Array.isArray(data)) throw bad(`${what}: data must be an array (flat or nested), got ${typeOf(data)}`);
  const out: Element[] = [];
  // the dimensions of the nesting, from the first element of each depth
  const dims: number[] = [];
  for (let a: unknown = data; Array.isArray(a); a = a[0]) dims.push(a.length);
  const walk = (a: unknown, depth: number): void => {
    if (depth === dims.length) {
      if (Array.isArray(a)) throw bad(`${what}: nested data is not rectangular (an array where a value belongs)`);
      out.push(jsonElement(a, datatype, what, out.length));
      return;
    }
    if (!Array.isArray(a) || a.length !== dims[depth]) {
      throw bad(`${what}: nested data is not rectangular (expected an array of ${dims[depth]} at depth ${depth})`);
    }
    if (depth === dims.length - 1) {
      for (const v of a) {
        if (Array.isArray(v)) throw bad(`${what}: nested data is not rectangular (an array where a value belongs)`);
        out.push(jsonElement(v, datatype, what, out.length));
      }
      return;
    }
    for (const v of a) walk(v, depth + 1);
  };
  walk(data, 0);
  return out;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Nests flat data in a shape, row-major (numpy's reshape(...).tolist()); the scalar shape [] gives the value itself. */
export function reshape<T>(flat: readonly T[], shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  let pos = 0;
  const build = (depth: number): unknown[] => {
    const n = shape[depth]!;
    const out = new Array<unknown>(n);
    if (depth === shape.length - 1) {
      for (let i = 0; i < n; i++) out[i] = flat[pos++];
    } else {
      for (let i = 0; i < n; i++) out[i] = build(depth + 1);
    }
    return out;
  };
  return build(0);
}

// ---------------------------------------------------------------------------------------------------------------
// Binary: the binary tensor extension and gRPC raw contents (little-endian, row-major, no padding)

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

// ---------------------------------------------------------------------------------------------------------------
// Outputs a handler returned as plain values (TorchServe's kservev2 envelope: np.array(value).flatten())

/** numpy's flatten of a Python value: nested lists fully flattened, a scalar as one element. */
export function flattenValue(value: unknown): unknown[] | null {
  if (!Array.isArray(value)) return [value];
  const dims: number[] = [];
  for (let a: unknown = value; Array.isArray(a); a = a[0]) dims.push(a.length);
  const out: unknown[] = [];
  const walk = (a: unknown, depth: number): boolean => {
    if (depth === dims.length) {
      if (Array.isArray(a)) return false;
      out.push(a);
      return true;
    }
    if (!Array.isArray(a) || a.length !== dims[depth]) return false;
    for (const v of a) if (!walk(v, depth + 1)) return false;
    return true;
  };
  return walk(value, 0) ? out : null;
}

/**
 * The datatype numpy gives a flat list of Python values (what TorchServe's kservev2 envelope reports): all booleans
 * BOOL, all integers (booleans allowed among them) INT64, all numbers FP64, anything else BYTES; an empty list FP64.
 */
export function inferDatatype(values: readonly unknown[]): Datatype {
  if (values.length === 0) return 'FP64';
  let bools = true;
  let ints = true;
  let numbers = true;
  for (const v of values) {
    if (typeof v === 'boolean') continue;
    bools = false;
    if (typeof v === 'number' || typeof v === 'bigint') {
      if (typeof v === 'number' && !Number.isInteger(v)) ints = false;
      continue;
    }
    ints = false;
    numbers = false;
    break;
  }
  if (bools) return 'BOOL';
  if (ints) return 'INT64';
  if (numbers) return 'FP64';
  return 'BYTES';
}

/** Values of an inferred datatype as elements: BYTES elements that are not strings become their JSON text. */
export function valuesToElements(values: readonly unknown[], datatype: Datatype): Element[] {
  if (datatype === 'BYTES') return values.map((v) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? 'null')));
  if (datatype === 'INT64') return values.map((v) => (typeof v === 'boolean' ? Number(v) : (v as number | bigint)));
  if (datatype === 'FP64') return values.map((v) => Number(v));
  return values as Element[];
}
