/**
 * Open Inference Protocol (KServe v2) tensors: datatypes, shapes, element checks, JSON data (flat or nested), and the
 * datatype numpy gives a handler's plain outputs. Raw bytes and gRPC contents are in tensor-binary.ts. Pure: no I/O,
 * every input is checked and every failure is a one-line BAD_REQUEST that names the tensor, so it can be fuzzed.
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

/** The ranges of the integer datatypes that fit a number (64-bit ones are bigint-checked where they are read). */
export const INT_RANGES: Partial<Record<Datatype, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
};

/** A limit on elements per tensor, so a shape like [1e9, 1e9] is refused before anything is allocated. */
export const MAX_ELEMENTS = 2 ** 31 - 1;

/** A one-line BAD_REQUEST about the client's tensor. */
export const bad = (message: string): MarError => new MarError('BAD_REQUEST', message);

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

/** What a datatype's elements must be, for messages: " (an integer from 0 to 255)". */
export function expectation(datatype: Datatype): string {
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
