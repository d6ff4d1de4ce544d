import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MarError } from '../../src/errors.js';
import { ReplyDecoder, RequestDecoder } from '../../src/runtime/frame-decoder.js';
import { encodeReply } from '../../src/runtime/protocol.js';
import {
  hex,
  LOAD_REPLY_HEX,
  PREDICT_BATCH,
  PREDICT_HEX,
  PREDICT_REPLY,
  PREDICT_REPLY_HEX,
  STATUS_REPLY,
  STATUS_REPLY_HEX,
} from './otf-samples.js';

/** Deterministic PRNG (mulberry32) so a failing split can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSplits(buf: Buffer, seed: number): Buffer[] {
  const rand = rng(seed);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const n = 1 + Math.floor(rand() * Math.min(40, buf.length - pos));
    out.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

const replies = [hex(LOAD_REPLY_HEX), hex(PREDICT_REPLY_HEX), hex(STATUS_REPLY_HEX)];
const expectedReplies = [{ code: 200, message: 'loaded model probe. [PID]:30336', predictions: [] }, PREDICT_REPLY, STATUS_REPLY];
const stream = Buffer.concat(replies);

function feed<T>(decoder: { push(b: Buffer): T[] }, chunks: Buffer[]): T[] {
  const out: T[] = [];
  for (const c of chunks) out.push(...decoder.push(Buffer.from(c)));
  return out;
}

test('ReplyDecoder: three replies in one chunk', () => {
  const d = new ReplyDecoder();
  assert.deepEqual(d.push(stream), expectedReplies);
  assert.equal(d.bufferedBytes, 0);
});

test('ReplyDecoder: one byte at a time', () => {
  const d = new ReplyDecoder();
  const chunks = [...stream].map((b) => Buffer.from([b]));
  const out: unknown[] = [];
  chunks.forEach((c, i) => {
    const got = d.push(c);
    // A reply is emitted exactly when its last byte arrives.
    const ends = [43, 43 + 92, 43 + 92 + 180];
    assert.equal(got.length, ends.includes(i + 1) ? 1 : 0, `byte ${i}`);
    out.push(...got);
  });
  assert.deepEqual(out, expectedReplies);
});

test('ReplyDecoder: seeded random splits', () => {
  for (let seed = 1; seed <= 200; seed++) {
    assert.deepEqual(feed(new ReplyDecoder(), randomSplits(stream, seed)), expectedReplies, `seed ${seed}`);
  }
});

test('RequestDecoder: PREDICT whole, byte by byte and in random splits', () => {
  const buf = hex(PREDICT_HEX);
  const expected = { command: 'predict', batch: PREDICT_BATCH };
  assert.deepEqual(new RequestDecoder().push(buf), [expected]);
  assert.deepEqual(
    feed(
      new RequestDecoder(),
      [...buf].map((b) => Buffer.from([b])),
    ),
    [expected],
  );
  const two = Buffer.concat([buf, buf]);
  for (let seed = 1; seed <= 100; seed++) {
    assert.deepEqual(feed(new RequestDecoder(), randomSplits(two, seed)), [expected, expected], `seed ${seed}`);
  }
});

test('a large body split into many reads decodes once it is complete', () => {
  const body = Buffer.alloc(1_000_000, 7);
  const frame = encodeReply({ code: 200, message: 'Prediction success', predictions: [{ ...PREDICT_REPLY.predictions[0]!, body }] });
  const d = new ReplyDecoder();
  const out = [];
  for (let pos = 0; pos < frame.length; pos += 65536) out.push(...d.push(frame.subarray(pos, pos + 65536)));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.predictions[0]!.body, body);
});

test('FRAME_TOO_LARGE as soon as a length field is over the limit, before the bytes arrive', () => {
  const d = new ReplyDecoder({ maxFrameBytes: 100 });
  const frame = encodeReply({ code: 200, message: 'x'.repeat(101), predictions: [] });
  assert.throws(
    () => d.push(frame.subarray(0, 8)),
    (e: unknown) => e instanceof MarError && e.code === 'FRAME_TOO_LARGE' && /101 bytes, over the limit of 100/.test(e.message),
  );
  // The stream stays failed.
  assert.throws(
    () => d.push(Buffer.from([0])),
    (e: unknown) => e instanceof MarError && e.code === 'FRAME_TOO_LARGE',
  );
});

test('the default limit is MMS max_response_size (6553500)', () => {
  const head = Buffer.alloc(8);
  head.writeInt32BE(200, 0);
  head.writeInt32BE(6_553_500, 4);
  assert.deepEqual(new ReplyDecoder().push(head), []);
  head.writeInt32BE(6_553_501, 4);
  assert.throws(
    () => new ReplyDecoder().push(head),
    (e: unknown) => e instanceof MarError && e.code === 'FRAME_TOO_LARGE',
  );
});

test('a negative length is FRAME_CORRUPT', () => {
  const head = Buffer.alloc(8);
  head.writeInt32BE(200, 0);
  head.writeInt32BE(-5, 4);
  assert.throws(
    () => new ReplyDecoder().push(head),
    (e: unknown) => e instanceof MarError && e.code === 'FRAME_CORRUPT',
  );
});

test('fuzz: corrupted and random input yields messages or a FRAME_* MarError, never another exception', () => {
  const rand = rng(42);
  const valid = [stream, hex(PREDICT_HEX)];
  for (let i = 0; i < 3000; i++) {
    const src = Buffer.from(valid[i % 2]!);
    // Flip a few bytes, or use pure noise.
    if (i % 5 === 0) for (let j = 0; j < src.length; j++) src[j] = Math.floor(rand() * 256);
    else for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) src[Math.floor(rand() * src.length)] = Math.floor(rand() * 256);
    for (const d of [new ReplyDecoder({ maxFrameBytes: 4096 }), new RequestDecoder({ maxFrameBytes: 4096 })] as Array<{
      push(b: Buffer): unknown[];
    }>) {
      try {
        feed(d, randomSplits(src, i));
      } catch (err) {
        assert.ok(err instanceof MarError && (err.code === 'FRAME_CORRUPT' || err.code === 'FRAME_TOO_LARGE'), `seed ${i}: ${String(err)}`);
      }
    }
  }
});
