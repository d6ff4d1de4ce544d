/**
 * The MMS/TorchServe "OTF" wire codec (docs/worker-protocol.md §2): big-endian int32 integers, int32-length-prefixed
 * UTF-8 strings, lists ended by int32 -1, no overall frame length. Pure: encoders build one Buffer, decoders read
 * from a Buffer and report how many bytes a complete message took (or that more bytes are needed). Stream state
 * lives in frame-decoder.ts.
 */

import { MarError } from '../errors.js';

export const CMD_LOAD = 0x4c; // 'L'
export const CMD_PREDICT = 0x49; // 'I'
const END = -1;

/** MMS's max_response_size: the default cap on any single length field. */
export const DEFAULT_MAX_FRAME_BYTES = 6_553_500;

/**
 * The parameter of an item row (docs/worker-protocol.md §3.3): a request whose only parameter has this name carries
 * a JSON array whose elements the handler sees as entries of `data`; the row's answer is the JSON array of their
 * outputs. The server passes KServe v1 instances and v2 input tensors this way (server/oip/envelope.ts).
 */
export const ITEMS_PARAM = 'mar:items';

export interface RequestParam {
  name: string;
  /** null is sent as an empty string (length 0) and decoded back to null. */
  contentType: string | null;
  value: Buffer;
}

export interface InferenceRequest {
  requestId: string;
  headers: Array<[string, string]>;
  params: RequestParam[];
}

/** LOAD in the classic MMS / TorchServe one-process-per-worker layout (no ioFileDescriptor). */
export interface LoadRequest {
  modelName: string;
  modelPath: string;
  batchSize: number;
  handler: string;
  /** -1 = CPU. */
  gpuId: number;
}

export interface PredictionResult {
  requestId: string;
  contentType: string | null;
  statusCode: number;
  reasonPhrase: string;
  headers: Array<[string, string]>;
  body: Buffer;
}

/** The worker's answer to LOAD (no predictions) or PREDICT. */
export interface WorkerReply {
  code: number;
  message: string;
  predictions: PredictionResult[];
}

/** What a worker reads: one LOAD or one PREDICT batch. */
export type WorkerRequest = { command: 'load'; load: LoadRequest } | { command: 'predict'; batch: InferenceRequest[] };

// ---------------------------------------------------------------------------------------------------------------
// Encoding: size first, then one allocation.

/** Strings up to this many UTF-16 units are measured and written in JavaScript when ASCII (request ids, headers). */
const SHORT = 64;

/** UTF-8 length of `s`: a short ASCII string in a loop, which costs less than a call into C++. */
function utf8Length(s: string): number {
  const n = s.length;
  if (n > SHORT) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return n;
}

const strLen = (s: string | null): number => 4 + (s ? utf8Length(s) : 0);

class Writer {
  readonly buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  int(n: number): void {
    this.pos = this.buf.writeInt32BE(n, this.pos);
  }
  byte(n: number): void {
    this.pos = this.buf.writeUInt8(n, this.pos);
  }
  str(s: string | null): void {
    if (!s) {
      this.int(0);
      return;
    }
    const len = s.length;
    if (len <= SHORT) {
      const buf = this.buf;
      const at = this.pos + 4;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at + i] = c;
      }
      if (i === len) {
        buf.writeInt32BE(len, this.pos);
        this.pos = at + len;
        return;
      }
    }
    const n = this.buf.write(s, this.pos + 4, 'utf8');
    this.buf.writeInt32BE(n, this.pos);
    this.pos += 4 + n;
  }
  bytes(b: Uint8Array): void {
    this.int(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function checkInt(name: string, n: number): void {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) {
    throw new MarError('INTERNAL', `${name} must be a 32-bit integer, got ${n}`);
  }
}

/** LOAD, classic layout: 'L', modelName, modelPath, max(batchSize,1), handler, gpuId. */
export function encodeLoad(r: LoadRequest): Buffer {
  checkInt('batchSize', r.batchSize);
  checkInt('gpuId', r.gpuId);
  const w = new Writer(1 + strLen(r.modelName) + strLen(r.modelPath) + 4 + strLen(r.handler) + 4);
  w.byte(CMD_LOAD);
  w.str(r.modelName);
  w.str(r.modelPath);
  w.int(Math.max(r.batchSize, 1));
  w.str(r.handler);
  w.int(r.gpuId);
  return w.buf;
}

export function encodePredict(batch: InferenceRequest[]): Buffer {
  // An upper bound (a UTF-16 unit is at most 3 UTF-8 bytes), then one pass that measures strings as it writes
  // them: every request pays for this, and its strings are short (an id, the request's headers).
  let size = 1 + 4;
  for (const req of batch) {
    size += 4 + 3 * req.requestId.length + 4 + 4;
    for (const [k, v] of req.headers) size += 8 + 3 * (k.length + v.length);
    for (const p of req.params) size += 12 + 3 * (p.name.length + (p.contentType?.length ?? 0)) + p.value.length;
  }
  const w = new Writer(size);
  w.byte(CMD_PREDICT);
  for (const req of batch) {
    w.str(req.requestId);
    for (const [k, v] of req.headers) {
      w.str(k);
      w.str(v);
    }
    w.int(END);
    for (const p of req.params) {
      w.str(p.name);
      w.str(p.contentType);
      w.bytes(p.value);
    }
    w.int(END);
  }
  w.int(END);
  return w.pos === size ? w.buf : w.buf.subarray(0, w.pos);
}

/** The response layout of §2.3, as the Python worker writes it (used by the Node worker and tests). */
export function encodeReply(r: WorkerReply): Buffer {
  checkInt('code', r.code);
  let size = 4 + strLen(r.message) + 4;
  for (const p of r.predictions) {
    size += strLen(p.requestId) + strLen(p.contentType) + 4 + strLen(p.reasonPhrase) + 4 + 4 + p.body.length;
    for (const [k, v] of p.headers) size += strLen(k) + strLen(v);
  }
  const w = new Writer(size);
  w.int(r.code);
  w.str(r.message);
  for (const p of r.predictions) {
    checkInt('statusCode', p.statusCode);
    w.str(p.requestId);
    w.str(p.contentType);
    w.int(p.statusCode);
    w.str(p.reasonPhrase);
    w.int(p.headers.length);
    for (const [k, v] of p.headers) {
      w.str(k);
      w.str(v);
    }
    w.bytes(p.body);
  }
  w.int(END);
  return w.buf;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding. A Reader walks a buffer; running out of bytes throws NEED_MORE carrying the minimum total length
// that could complete the message, so a stream decoder can wait for that many bytes before trying again.

export class NeedMore {
  constructor(readonly minBytes: number) {}
}

export class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly maxFrameBytes: number,
  ) {
    this.pos = start;
  }
  #need(n: number): void {
    if (this.pos + n > this.buf.length) throw new NeedMore(this.pos + n);
  }
  byte(): number {
    this.#need(1);
    return this.buf[this.pos++]!;
  }
  int(): number {
    this.#need(4);
    const n = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return n;
  }
  /** A length field: -1 only where `allowEnd`, else 0..maxFrameBytes. */
  length(what: string, allowEnd: boolean): number {
    const n = this.int();
    if (n === END && allowEnd) return END;
    if (n < 0) throw new MarError('FRAME_CORRUPT', `corrupt frame from worker: negative length ${n} for ${what}`);
    if (n > this.maxFrameBytes) {
      throw new MarError(
        'FRAME_TOO_LARGE',
        `frame field ${what} is ${n} bytes, over the limit of ${this.maxFrameBytes}; raise max_response_size if the model really returns that much`,
      );
    }
    return n;
  }
  bytesOf(n: number): Buffer {
    this.#need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  stringOf(n: number): string {
    if (n === 0) return ''; // most replies' content type and reason phrase: no call into C++ for them
    this.#need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  str(what: string): string {
    return this.stringOf(this.length(what, false));
  }
}

/** Reads one worker reply starting at `r.pos`; throws NeedMore if incomplete. */
export function readReply(r: Reader): WorkerReply {
  const code = r.int();
  const message = r.str('message');
  const predictions: PredictionResult[] = [];
  for (;;) {
    const idLen = r.length('requestId', true);
    if (idLen === END) break;
    const requestId = r.stringOf(idLen);
    const ct = r.str('contentType');
    const statusCode = r.int();
    const reasonPhrase = r.str('reasonPhrase');
    const nHeaders = r.int();
    if (nHeaders < 0 || nHeaders > r.maxFrameBytes / 8) {
      throw new MarError('FRAME_CORRUPT', `corrupt frame from worker: header count ${nHeaders}`);
    }
    const headers: Array<[string, string]> = [];
    for (let i = 0; i < nHeaders; i++) headers.push([r.str('header name'), r.str('header value')]);
    const body = r.bytesOf(r.length('body', false));
    predictions.push({ requestId, contentType: ct === '' ? null : ct, statusCode, reasonPhrase, headers, body });
  }
  return { code, message, predictions };
}

/** Reads one LOAD or PREDICT message starting at `r.pos` (worker side); throws NeedMore if incomplete. */
export function readRequest(r: Reader): WorkerRequest {
  const cmd = r.byte();
  if (cmd === CMD_LOAD) {
    const modelName = r.str('modelName');
    const modelPath = r.str('modelPath');
    const batchSize = r.int();
    const handler = r.str('handler');
    const gpuId = r.int();
    return { command: 'load', load: { modelName, modelPath, batchSize, handler, gpuId } };
  }
  if (cmd === CMD_PREDICT) {
    const batch: InferenceRequest[] = [];
    for (;;) {
      const idLen = r.length('requestId', true);
      if (idLen === END) break;
      const requestId = r.stringOf(idLen);
      const headers: Array<[string, string]> = [];
      for (;;) {
        const nameLen = r.length('header name', true);
        if (nameLen === END) break;
        headers.push([r.stringOf(nameLen), r.str('header value')]);
      }
      const params: RequestParam[] = [];
      for (;;) {
        const nameLen = r.length('parameter name', true);
        if (nameLen === END) break;
        const name = r.stringOf(nameLen);
        const ct = r.str('content type');
        const value = r.bytesOf(r.length('parameter value', false));
        params.push({ name, contentType: ct === '' ? null : ct, value });
      }
      batch.push({ requestId, headers, params });
    }
    return { command: 'predict', batch };
  }
  throw new MarError('FRAME_CORRUPT', `corrupt frame: unknown command byte 0x${cmd.toString(16).padStart(2, '0')}`);
}

function decodeWhole<T>(buf: Buffer, read: (r: Reader) => T, maxFrameBytes: number, what: string): T {
  const r = new Reader(buf, 0, maxFrameBytes);
  let value: T;
  try {
    value = read(r);
  } catch (err) {
    if (err instanceof NeedMore)
      throw new MarError('FRAME_CORRUPT', `truncated ${what}: ${buf.length} bytes, at least ${err.minBytes} needed`);
    throw err;
  }
  if (r.pos !== buf.length) throw new MarError('FRAME_CORRUPT', `${buf.length - r.pos} trailing bytes after ${what}`);
  return value;
}

/** Decodes exactly one complete reply (tests, tools). Streams use ReplyDecoder. */
export function decodeReply(buf: Buffer, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): WorkerReply {
  return decodeWhole(buf, readReply, maxFrameBytes, 'worker reply');
}

/** Decodes exactly one complete LOAD or PREDICT message. Streams use RequestDecoder. */
export function decodeRequest(buf: Buffer, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): WorkerRequest {
  return decodeWhole(buf, readRequest, maxFrameBytes, 'worker request');
}
