/**
 * CRC-32 of a concatenation from the CRC-32s of its parts (zlib's crc32_combine, which Node does not expose), so
 * the extractor can checksum the chunks of one large entry in any order, as they come back from parallel reads.
 * The algorithm appends len2 zero bytes to crc1 with a GF(2) operator matrix; the matrix for one chunk length is
 * built once and reused (32 XORs per combine instead of ~45,000).
 */

const POLY = 0xedb88320;

type Matrix = Uint32Array;

function times(mat: Matrix, vec: number): number {
  let sum = 0;
  let v = vec >>> 0;
  for (let i = 0; v !== 0; i++, v >>>= 1) if (v & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function square(mat: Matrix): Matrix {
  const out = new Uint32Array(32);
  for (let n = 0; n < 32; n++) out[n] = times(mat, mat[n]!);
  return out;
}

function product(a: Matrix, b: Matrix): Matrix {
  // (a ∘ b)[n] = a applied to column n of b
  const out = new Uint32Array(32);
  for (let n = 0; n < 32; n++) out[n] = times(a, b[n]!);
  return out;
}

/** The operator that appends `len` zero bytes to a CRC-32 register. */
function zerosOperator(len: number): Matrix {
  // One zero bit, then squared up: 2, 4, 8 bits = one byte, then doubling bytes for each bit of len.
  let op: Matrix = new Uint32Array(32);
  op[0] = POLY;
  for (let n = 1; n < 32; n++) op[n] = (1 << (n - 1)) >>> 0;
  op = square(square(square(op)));
  let result: Matrix | null = null;
  for (let rest = len; rest > 0; rest = Math.floor(rest / 2)) {
    if (rest % 2 === 1) result = result === null ? op : product(op, result);
    if (rest > 1) op = square(op);
  }
  return result ?? identity();
}

function identity(): Matrix {
  const m = new Uint32Array(32);
  for (let n = 0; n < 32; n++) m[n] = (1 << n) >>> 0;
  return m;
}

/** Combines CRC-32s of consecutive pieces; keeps the operator of each piece length it has seen (a few at most). */
export class Crc32Combiner {
  readonly #operators = new Map<number, Matrix>();

  /** CRC-32 of A+B from crc(A), crc(B) and B's length in bytes. */
  combine(crcA: number, crcB: number, lengthB: number): number {
    if (lengthB <= 0) return crcA >>> 0;
    let op = this.#operators.get(lengthB);
    if (!op) {
      op = zerosOperator(lengthB);
      if (this.#operators.size < 8) this.#operators.set(lengthB, op);
    }
    return (times(op, crcA) ^ crcB) >>> 0;
  }

  /** CRC-32 of the concatenation of pieces given in order as [crc, length]. */
  combineAll(pieces: ReadonlyArray<readonly [crc: number, length: number]>): number {
    let crc = 0;
    for (const [c, len] of pieces) crc = this.combine(crc, c, len);
    return crc;
  }
}
