/**
 * Shared pieces of the property tests (fast-check): run counts kept small enough for npm test, a seed that can be
 * replayed, and byte-level mutations of encoded frames and archives.
 *
 *   FC_SEED=<seed> FC_RUNS=<n> node --test dist/test/...   replays a failure (fast-check prints seed and path)
 */
import fc from 'fast-check';
import type { InferenceRequest, LoadRequest } from '../../src/runtime/protocol.js';

/** fast-check parameters: `runs` by default (FC_RUNS overrides), FC_SEED to replay; failures print seed and path. */
export function fuzzParams<T>(runs: number): fc.Parameters<T> {
  // the failing assertion in the report itself: node's test output does not show an error's cause
  const params: fc.Parameters<T> = { numRuns: Number(process.env['FC_RUNS'] ?? runs), includeErrorInReport: true };
  if (process.env['FC_SEED'] !== undefined) params.seed = Number(process.env['FC_SEED']);
  return params;
}

export type Mutation =
  | { kind: 'flip'; at: number; fromEnd: boolean; bit: number }
  | { kind: 'set'; at: number; fromEnd: boolean; byte: number }
  | { kind: 'int32'; at: number; fromEnd: boolean; value: number }
  | { kind: 'truncate'; at: number; fromEnd: boolean }
  | { kind: 'insert'; at: number; fromEnd: boolean; bytes: Uint8Array }
  | { kind: 'delete'; at: number; fromEnd: boolean; len: number };

/** Values that break length and count fields: -1 (the list end), negatives, 0, the int32 extremes, "just over a cap". */
const nastyInt = fc.oneof(
  fc.constantFrom(-1, -2, 0, 1, 0x7fffffff, -0x80000000, 0xffff, 0x10000, 0xffffffff | 0, 4096, 65_537, 200_001),
  fc.integer({ min: -0x80000000, max: 0x7fffffff }),
);

const position = { at: fc.nat({ max: 1 << 20 }), fromEnd: fc.boolean() };

/** One mutation; `fromEnd` positions count from the end (a zip's central directory and end record live there). */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), ...position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), ...position, byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('int32' as const), ...position, value: nastyInt }),
  fc.record({ kind: fc.constant('truncate' as const), ...position }),
  fc.record({ kind: fc.constant('insert' as const), ...position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), ...position, len: fc.integer({ min: 1, max: 16 }) }),
);

/** Applies mutations in order (positions wrap around the current length). */
export function mutate(input: Buffer, mutations: readonly Mutation[]): Buffer {
  let buf = Buffer.from(input);
  for (const m of mutations) {
    if (buf.length === 0) break;
    const off = m.at % buf.length;
    const at = m.fromEnd ? buf.length - 1 - off : off;
    switch (m.kind) {
      case 'flip':
        buf[at] = buf[at]! ^ (1 << m.bit);
        break;
      case 'set':
        buf[at] = m.byte;
        break;
      case 'int32': {
        const p = Math.min(at, Math.max(0, buf.length - 4));
        if (buf.length >= 4) buf.writeInt32BE(m.value | 0, p);
        break;
      }
      case 'truncate':
        buf = buf.subarray(0, at);
        break;
      case 'insert':
        buf = Buffer.concat([buf.subarray(0, at), Buffer.from(m.bytes), buf.subarray(at)]);
        break;
      case 'delete':
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.len)]);
        break;
    }
  }
  return buf;
}

/** Where to cut a byte stream into chunks (sizes, each >= 1; the rest goes in one last chunk). */
export const cutsArb = fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 12 });

/** Splits `buf` at the given chunk sizes. */
export function split(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  for (const c of cuts) {
    if (pos >= buf.length) break;
    out.push(buf.subarray(pos, pos + c));
    pos += c;
  }
  if (pos < buf.length) out.push(buf.subarray(pos));
  return out;
}

// Protocol values (runtime/protocol.ts) for the frame codec properties of both sides.

export const text = fc.string({ maxLength: 24, unit: 'grapheme' });
export const bytes = fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));
export const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
/** Records with Object.prototype, as the decoders build them (deepEqual compares prototypes). */
export const PLAIN = { noNullPrototype: true } as const;

export const requestArb: fc.Arbitrary<InferenceRequest> = fc.record(
  {
    requestId: text,
    headers: fc.array(fc.tuple(text, text), { maxLength: 4 }),
    params: fc.array(
      fc.record(
        {
          name: text,
          contentType: fc.option(
            text.filter((s) => s !== ''),
            { nil: null },
          ),
          value: bytes,
        },
        PLAIN,
      ),
      {
        maxLength: 4,
      },
    ),
  },
  PLAIN,
);

export const loadArb: fc.Arbitrary<LoadRequest> = fc.record(
  {
    modelName: text,
    modelPath: text,
    batchSize: fc.integer({ min: 1, max: 1000 }),
    handler: text,
    gpuId: int32,
  },
  PLAIN,
);
