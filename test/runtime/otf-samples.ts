/** The reference byte dumps of docs/worker-protocol.md §2.4 and the messages they encode, shared by the codec tests. */
import type { InferenceRequest, WorkerReply } from '../../src/runtime/protocol.js';

/** Hex from the reference dumps (docs/worker-protocol.md §2.4), whitespace ignored. */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

export const LOAD_REPLY_HEX = `
00 00 00 c8 00 00 00 1f 6c 6f 61 64 65 64 20 6d 6f 64 65 6c 20 70 72 6f 62 65 2e 20 5b 50 49 44
5d 3a 33 30 33 33 36 ff ff ff ff`;

export const PREDICT_HEX = `
49 00 00 00 05 72 65 71 2d 31 00 00 00 0c 43 6f 6e 74 65 6e 74 2d 54 79 70 65 00 00 00 10 61 70
70 6c 69 63 61 74 69 6f 6e 2f 6a 73 6f 6e 00 00 00 08 58 2d 43 75 73 74 6f 6d 00 00 00 03 61 62
63 ff ff ff ff 00 00 00 04 62 6f 64 79 00 00 00 10 61 70 70 6c 69 63 61 74 69 6f 6e 2f 6a 73 6f
6e 00 00 00 08 7b 22 78 22 3a 20 31 7d ff ff ff ff 00 00 00 05 72 65 71 2d 32 00 00 00 0c 43 6f
6e 74 65 6e 74 2d 54 79 70 65 00 00 00 0a 74 65 78 74 2f 70 6c 61 69 6e ff ff ff ff 00 00 00 04
62 6f 64 79 00 00 00 0a 74 65 78 74 2f 70 6c 61 69 6e 00 00 00 05 68 65 6c 6c 6f 00 00 00 01 71
00 00 00 00 00 00 00 01 76 ff ff ff ff ff ff ff ff`;

export const PREDICT_REPLY_HEX = `
00 00 00 c8 00 00 00 12 50 72 65 64 69 63 74 69 6f 6e 20 73 75 63 63 65 73 73 00 00 00 05 72 65
71 2d 31 00 00 00 00 00 00 00 c8 00 00 00 00 00 00 00 00 00 00 00 02 4f 4b 00 00 00 05 72 65 71
2d 32 00 00 00 00 00 00 00 c8 00 00 00 00 00 00 00 00 00 00 00 02 4f 4b ff ff ff ff`;

export const STATUS_REPLY_HEX = `
0000 00c8 0000 0012 5072 6564 6963 7469 6f6e 2073 7563 6365 7373 0000 0005 7265
712d 3100 0000 0a74 6578 742f 706c 6169 6e00 0000 c900 0000 0d43 7265 6174 6564
2054 6869 6e67 0000 0002 0000 000c 636f 6e74 656e 742d 7479 7065 0000 000a 7465
7874 2f70 6c61 696e 0000 0005 582d 466f 6f00 0000 0362 6172 0000 000b 0001 7261
772d 6279 7465 7300 0000 0572 6571 2d32 0000 0000 0000 0194 0000 0000 0000 0000
0000 000c 7b0a 2020 2261 223a 2031 0a7d ffff ffff`;

export const PREDICT_BATCH: InferenceRequest[] = [
  {
    requestId: 'req-1',
    headers: [
      ['Content-Type', 'application/json'],
      ['X-Custom', 'abc'],
    ],
    params: [{ name: 'body', contentType: 'application/json', value: Buffer.from('{"x": 1}') }],
  },
  {
    requestId: 'req-2',
    headers: [['Content-Type', 'text/plain']],
    params: [
      { name: 'body', contentType: 'text/plain', value: Buffer.from('hello') },
      { name: 'q', contentType: null, value: Buffer.from('v') },
    ],
  },
];

const ok = (id: string) => ({ requestId: id, contentType: null, statusCode: 200, reasonPhrase: '', headers: [], body: Buffer.from('OK') });

export const PREDICT_REPLY: WorkerReply = { code: 200, message: 'Prediction success', predictions: [ok('req-1'), ok('req-2')] };

export const STATUS_REPLY: WorkerReply = {
  code: 200,
  message: 'Prediction success',
  predictions: [
    {
      requestId: 'req-1',
      contentType: 'text/plain',
      statusCode: 201,
      reasonPhrase: 'Created Thing',
      headers: [
        ['content-type', 'text/plain'],
        ['X-Foo', 'bar'],
      ],
      body: Buffer.from('\x00\x01raw-bytes', 'latin1'),
    },
    { requestId: 'req-2', contentType: null, statusCode: 404, reasonPhrase: '', headers: [], body: Buffer.from('{\n  "a": 1\n}') },
  ],
};

/**
 * MMS's error table (docs/worker-protocol.md §5.3): fixture function in errors.py / errors.js -> the reply code and
 * message every request of the batch gets. Both workers must answer exactly this.
 */
export const ERROR_ROWS: ReadonlyArray<readonly [string, number, string]> = [
  ['return_none', 503, 'Invalid model predict output'],
  ['wrong_length', 503, 'number of batch response mismatched'],
  ['raise_error', 503, 'Prediction failed'],
  ['prediction_exception', 599, 'Some Prediction Error'],
  ['memory_error', 507, 'Out of resources'],
  ['unserialisable', 503, 'Unsupported model output data type.'],
];
