/**
 * Property tests of the frontend's frame codec (protocol.ts, frame-decoder.ts): whatever bytes a worker (or a
 * corrupted stream) sends, in whatever pieces, the decoders return the messages that were encoded, or fail with
 * FRAME_CORRUPT / FRAME_TOO_LARGE and stay failed; they never throw anything else and never wait for more than one
 * field's worth of bytes past what arrived.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MarError } from '../../src/errors.js';
import { type FrameDecoder, ReplyDecoder, RequestDecoder } from '../../src/runtime/frame-decoder.js';
import { encodeLoad, encodePredict, encodeReply, type WorkerReply, type WorkerRequest } from '../../src/runtime/protocol.js';
import { bytes, cutsArb, fuzzParams, int32, loadArb, mutate, mutationArb, PLAIN, requestArb, split, text } from '../helpers/fuzz.js';

/** A small cap, so that mutated length fields hit it often. */
const CAP = 4096;

const replyArb: fc.Arbitrary<WorkerReply> = fc.record(
  {
    code: int32,
    message: text,
    predictions: fc.array(
      fc.record(
        {
          requestId: text.filter((s) => s !== ''),
          contentType: fc.option(
            text.filter((s) => s !== ''),
            { nil: null },
          ),
          statusCode: int32,
          reasonPhrase: text,
          headers: fc.array(fc.tuple(text, text), { maxLength: 3 }),
          body: bytes,
        },
        PLAIN,
      ),
      { maxLength: 4 },
    ),
  },
  PLAIN,
);

/** What decoding gives back for an encoded request: an empty request id or header value stays '' (only content types map '' to null). */
const messageArb: fc.Arbitrary<WorkerRequest> = fc.oneof(
  loadArb.map((load) => ({ command: 'load' as const, load: { ...load, batchSize: Math.max(load.batchSize, 1) } })),
  fc.array(requestArb, { maxLength: 4 }).map((batch) => ({ command: 'predict' as const, batch })),
);

function encodeMessage(m: WorkerRequest): Buffer {
  return m.command === 'load' ? encodeLoad(m.load) : encodePredict(m.batch);
}

/** Feeds chunks; returns the messages decoded and the error the stream failed with (then stops). */
function feed<T>(decoder: FrameDecoder<T>, chunks: readonly Buffer[]): { messages: T[]; error: unknown } {
  const messages: T[] = [];
  let pushed = 0;
  for (const c of chunks) {
    pushed += c.length;
    try {
      messages.push(...decoder.push(c));
    } catch (err) {
      return { messages, error: err };
    }
    assert.ok(decoder.bufferedBytes <= pushed, 'never holds more than it was given');
  }
  return { messages, error: null };
}

function assertFrameError(err: unknown): void {
  assert.ok(err instanceof MarError, `not a MarError: ${String(err)}`);
  assert.ok(err.code === 'FRAME_CORRUPT' || err.code === 'FRAME_TOO_LARGE', err.code);
}

test('requests: any sequence of LOAD/PREDICT messages, cut anywhere, decodes to what was encoded', () => {
  fc.assert(
    fc.property(fc.array(messageArb, { minLength: 1, maxLength: 3 }), cutsArb, (messages, cuts) => {
      const wire = Buffer.concat(messages.map(encodeMessage));
      const { messages: got, error } = feed(new RequestDecoder(), split(wire, cuts));
      assert.equal(error, null);
      assert.deepEqual(got, messages);
    }),
    fuzzParams(300),
  );
});

test('replies: any reply, cut anywhere, decodes to what was encoded', () => {
  fc.assert(
    fc.property(fc.array(replyArb, { minLength: 1, maxLength: 3 }), cutsArb, (replies, cuts) => {
      const wire = Buffer.concat(replies.map(encodeReply));
      const { messages, error } = feed(new ReplyDecoder(), split(wire, cuts));
      assert.equal(error, null);
      assert.deepEqual(messages, replies);
    }),
    fuzzParams(300),
  );
});

test('mutated, truncated or random request bytes: messages or a FRAME_* error, and the stream stays failed', () => {
  const input = fc.oneof(
    fc
      .tuple(fc.array(messageArb, { minLength: 1, maxLength: 2 }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
      .map(([ms, muts]) => mutate(Buffer.concat(ms.map(encodeMessage)), muts)),
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  );
  fc.assert(
    fc.property(input, cutsArb, (wire, cuts) => {
      const decoder = new RequestDecoder({ maxFrameBytes: CAP });
      const { error } = feed(decoder, split(wire, cuts));
      if (error === null) return;
      assertFrameError(error);
      assert.throws(
        () => decoder.push(Buffer.from([0x49])),
        (e: unknown) => e === error,
        'a failed stream keeps its error',
      );
    }),
    fuzzParams(500),
  );
});

test('mutated, truncated or random reply bytes: replies or a FRAME_* error; a length over the cap fails at once', () => {
  const input = fc.oneof(
    fc.tuple(replyArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([r, muts]) => mutate(encodeReply(r), muts)),
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  );
  fc.assert(
    fc.property(input, cutsArb, (wire, cuts) => {
      const decoder = new ReplyDecoder({ maxFrameBytes: CAP });
      const { error } = feed(decoder, split(wire, cuts));
      if (error !== null) assertFrameError(error);
    }),
    fuzzParams(500),
  );
  // a length field just over the cap is refused as soon as its 4 bytes are in, not after CAP bytes more
  const head = Buffer.alloc(12);
  head.writeInt32BE(200, 0);
  head.writeInt32BE(0, 4);
  head.writeInt32BE(CAP + 1, 8); // the first prediction's requestId length
  assert.throws(
    () => new ReplyDecoder({ maxFrameBytes: CAP }).push(head),
    (e: unknown) => e instanceof MarError && e.code === 'FRAME_TOO_LARGE',
  );
});
