import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MarError } from '../../src/errors.js';
import { decodeReply, decodeRequest, encodeLoad, encodePredict, encodeReply, type InferenceRequest } from '../../src/runtime/protocol.js';
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

test('reference dumps have the documented sizes', () => {
  assert.equal(hex(LOAD_REPLY_HEX).length, 43);
  assert.equal(hex(PREDICT_HEX).length, 209);
  assert.equal(hex(PREDICT_REPLY_HEX).length, 92);
  assert.equal(hex(STATUS_REPLY_HEX).length, 180);
});

test('encodePredict writes the reference PREDICT bytes exactly', () => {
  assert.deepEqual(encodePredict(PREDICT_BATCH), hex(PREDICT_HEX));
});

test('decodeRequest reads the reference PREDICT back', () => {
  assert.deepEqual(decodeRequest(hex(PREDICT_HEX)), { command: 'predict', batch: PREDICT_BATCH });
});

test('encodeReply writes the reference PREDICT and status/header replies exactly', () => {
  assert.deepEqual(encodeReply(PREDICT_REPLY), hex(PREDICT_REPLY_HEX));
  assert.deepEqual(encodeReply(STATUS_REPLY), hex(STATUS_REPLY_HEX));
});

test('decodeReply reads the reference replies', () => {
  assert.deepEqual(decodeReply(hex(LOAD_REPLY_HEX)), { code: 200, message: 'loaded model probe. [PID]:30336', predictions: [] });
  assert.deepEqual(decodeReply(hex(PREDICT_REPLY_HEX)), PREDICT_REPLY);
  assert.deepEqual(decodeReply(hex(STATUS_REPLY_HEX)), STATUS_REPLY);
});

test('encodeLoad writes the classic layout and clamps the batch size to 1', () => {
  const buf = encodeLoad({ modelName: 'probe', modelPath: '/m', batchSize: 0, handler: 'my_handler:handle', gpuId: -1 });
  const expected = Buffer.concat([
    Buffer.from([0x4c]),
    hex('00000005'),
    Buffer.from('probe'),
    hex('00000002'),
    Buffer.from('/m'),
    hex('00000001'),
    hex('00000011'),
    Buffer.from('my_handler:handle'),
    hex('ffffffff'),
  ]);
  assert.deepEqual(buf, expected);
  assert.deepEqual(decodeRequest(buf), {
    command: 'load',
    load: { modelName: 'probe', modelPath: '/m', batchSize: 1, handler: 'my_handler:handle', gpuId: -1 },
  });
});

test('strings are length-prefixed in UTF-8 bytes, not characters', () => {
  const batch: InferenceRequest[] = [{ requestId: 'é', headers: [['X-Name', 'zoë ✓']], params: [] }];
  const buf = encodePredict(batch);
  assert.equal(buf.readInt32BE(1), 2);
  assert.deepEqual(decodeRequest(buf), { command: 'predict', batch });
});

test('a truncated or padded message is FRAME_CORRUPT', () => {
  const whole = hex(PREDICT_REPLY_HEX);
  assert.throws(
    () => decodeReply(whole.subarray(0, 50)),
    (e: unknown) => e instanceof MarError && e.code === 'FRAME_CORRUPT',
  );
  assert.throws(
    () => decodeReply(Buffer.concat([whole, Buffer.from([0])])),
    (e: unknown) => e instanceof MarError && e.code === 'FRAME_CORRUPT',
  );
  assert.throws(
    () => decodeRequest(Buffer.from([0x51])),
    (e: unknown) => e instanceof MarError && /unknown command byte 0x51/.test(e.message),
  );
});
