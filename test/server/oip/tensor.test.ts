/**
 * The Open Inference Protocol's tensor codec (src/server/oip/tensor.ts, v2-json.ts) and the gRPC message codec, without
 * a server: datatype and shape checks against the data, JSON (flat and nested), the binary extension, gRPC contents,
 * FP16, and random inputs (seeded, so a failure repeats) that must round-trip or fail with a one-line BAD_REQUEST.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMarError } from '../../../src/errors.js';
import { fromModelInferRequest, type ModelInferRequestMessage, toModelInferResponse } from '../../../src/server/grpc/oip-codec.js';
import type { Datatype, Element } from '../../../src/server/oip/tensor.js';
import {
  checkShape,
  DATATYPES,
  flattenJsonData,
  flattenValue,
  inferDatatype,
  reshape,
  resolveShape,
} from '../../../src/server/oip/tensor.js';
import {
  decodeBinary,
  encodeBinary,
  floatToHalf,
  fromContents,
  halfToFloat,
  shortestFloat32,
  toContents,
} from '../../../src/server/oip/tensor-binary.js';
import { formatRestResponse, parseRestRequest, stringifyJson } from '../../../src/server/oip/v2-json.js';

/** Asserts `fn` throws a BAD_REQUEST MarError whose one-line message matches `re`. */
function badRequest(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMarError(err), String(err));
    assert.equal(err.code, 'BAD_REQUEST');
    assert.equal(err.httpStatus, 400);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, re);
    return true;
  });
}

const rest = (o: unknown, binary?: Buffer): ReturnType<typeof parseRestRequest> => {
  const json = Buffer.from(JSON.stringify(o));
  return binary ? parseRestRequest(Buffer.concat([json, binary]), String(json.length)) : parseRestRequest(json, undefined);
};
const input = (o: Record<string, unknown>): unknown => ({ inputs: [{ name: 'x', ...o }] });

describe('REST inference requests: datatype and shape checked against the data', () => {
  it('flat or nested data, in row-major order; shape -1 inferred as numpy does', () => {
    const flat = rest(input({ shape: [2, 2], datatype: 'INT32', data: [1, 2, 3, 4] }));
    const nested = rest(
      input({
        shape: [2, 2],
        datatype: 'INT32',
        data: [
          [1, 2],
          [3, 4],
        ],
      }),
    );
    assert.deepEqual(flat.inputs[0]!.data, [1, 2, 3, 4]);
    assert.deepEqual(nested.inputs[0], flat.inputs[0]);
    assert.deepEqual(rest(input({ shape: [-1], datatype: 'BYTES', data: ['png'] })).inputs[0]!.shape, [1]);
    assert.deepEqual(rest(input({ shape: [2, -1], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] })).inputs[0]!.shape, [2, 3]);
    assert.deepEqual(rest(input({ shape: [], datatype: 'BOOL', data: [true] })).inputs[0]!.shape, []);
  });

  it('refuses what does not fit, saying which tensor and what is wrong', () => {
    badRequest(
      () => rest(input({ shape: [3], datatype: 'BOOL', data: [true] })),
      /input "x": shape \[3\] holds 3 element\(s\) but the data has 1/,
    );
    badRequest(() => rest(input({ shape: [2], datatype: 'FLOAT', data: [1, 2] })), /datatype "FLOAT" is not one of BOOL, UINT8/);
    badRequest(() => rest(input({ shape: 150, datatype: 'INT64', data: [1] })), /shape must be an array of integers/);
    badRequest(() => rest(input({ shape: [-1, -1], datatype: 'INT64', data: [1] })), /more than one -1/);
    badRequest(() => rest(input({ shape: [1.5], datatype: 'INT64', data: [1] })), /dimensions are integers >= 0/);
    badRequest(
      () => rest(input({ shape: [4], datatype: 'UINT8', data: [1, 2, 256, 3] })),
      /element 2 \(256\) is not a valid UINT8 value \(an integer from 0 to 255\)/,
    );
    badRequest(() => rest(input({ shape: [1], datatype: 'INT8', data: [-129] })), /INT8/);
    badRequest(() => rest(input({ shape: [1], datatype: 'INT32', data: [1.5] })), /INT32/);
    badRequest(() => rest(input({ shape: [1], datatype: 'UINT64', data: [-1] })), /an integer >= 0/);
    badRequest(() => rest(input({ shape: [1], datatype: 'BOOL', data: [1] })), /true or false/);
    badRequest(() => rest(input({ shape: [1], datatype: 'BYTES', data: [1] })), /a string/);
    badRequest(() => rest(input({ shape: [1], datatype: 'FP32', data: ['1'] })), /a number/);
    badRequest(() => rest(input({ shape: [4], datatype: 'INT32', data: [[1, 2], [3]] })), /not rectangular/);
    badRequest(() => rest(input({ shape: [2], datatype: 'INT32', data: [[1], 2] })), /not rectangular/);
    badRequest(() => rest(input({ shape: [1], datatype: 'INT32', data: 5 })), /data must be an array/);
    badRequest(() => rest(input({ shape: [1], datatype: 'INT32' })), /has no "data"/);
    badRequest(
      () =>
        rest({
          inputs: [
            { name: 'x', shape: [1], datatype: 'INT32', data: [1] },
            { name: 'x', shape: [1], datatype: 'INT32', data: [1] },
          ],
        }),
      /given twice/,
    );
    badRequest(() => rest({ input: [] }), /needs "inputs"/);
    badRequest(() => rest({ id: 42, inputs: [] }), /"id" must be a string/);
    badRequest(() => rest({ inputs: [], parameters: { a: [1] } }), /parameter "a" must be a string, number or boolean/);
    badRequest(() => rest({ inputs: [], outputs: [{}] }), /requested output 0 needs a "name"/);
    badRequest(() => parseRestRequest(Buffer.from('{"inputs": ['), undefined), /the inference request is not valid JSON/);
    badRequest(() => rest(input({ shape: [1e6, 1e6, 1e6], datatype: 'INT8', data: [] })), /more than 2147483647/);
  });
});

describe('the binary tensor extension', () => {
  it('reads each input with binary_data_size from the bytes after the JSON header, in order', () => {
    const a = Buffer.alloc(8);
    a.writeFloatLE(0.5, 0);
    a.writeFloatLE(-2, 4);
    const b = encodeBinary([Buffer.from('hi'), 'there'], 'BYTES');
    const r = rest(
      {
        inputs: [
          { name: 'a', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
          { name: 'j', shape: [1], datatype: 'INT64', data: [7] },
          { name: 'b', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: b.length, tag: 'kept' } },
        ],
      },
      Buffer.concat([a, b]),
    );
    assert.deepEqual(r.inputs[0]!.data, [0.5, -2]);
    assert.deepEqual(r.inputs[1]!.data, [7]);
    assert.deepEqual(r.inputs[2]!.data, [Buffer.from('hi'), Buffer.from('there')]);
    assert.deepEqual(r.inputs[2]!.parameters, { tag: 'kept' }, 'binary_data_size is transport, the rest is the input’s');
  });

  it('refuses sizes that do not match, bytes nobody claims, and binary without the header', () => {
    const four = Buffer.alloc(4);
    badRequest(
      () => rest(input({ shape: [2], datatype: 'FP32', parameters: { binary_data_size: 4 } }), four),
      /the shape holds 2 element\(s\) \(8 bytes\) but the data has 4 bytes/,
    );
    badRequest(
      () => rest(input({ shape: [1], datatype: 'FP32', parameters: { binary_data_size: 8 } }), four),
      /does not fit the 4 binary byte/,
    );
    badRequest(() => rest(input({ shape: [1], datatype: 'FP32', data: [1] }), four), /4 byte\(s\) after the JSON are not claimed/);
    badRequest(
      () => rest(input({ shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } })),
      /no Inference-Header-Content-Length/,
    );
    badRequest(
      () => rest(input({ shape: [1], datatype: 'FP32', data: [1], parameters: { binary_data_size: 4 } }), four),
      /both "data" and the binary_data_size/,
    );
    badRequest(
      () => parseRestRequest(Buffer.from('{}'), '99'),
      /Inference-Header-Content-Length "99" must be an integer from 0 to the body's 2 bytes/,
    );
    badRequest(
      () => decodeBinary(Buffer.from([5, 0, 0, 0, 65]), 'BYTES', -1, 'input "s"'),
      /BYTES element 0 says 5 bytes but only 1 follow/,
    );
    badRequest(() => decodeBinary(Buffer.from([5, 0]), 'BYTES', -1, 'input "s"'), /inside an element's 4-byte length/);
    badRequest(() => decodeBinary(Buffer.alloc(3), 'INT16', -1, 'input "s"'), /3 bytes is not a whole number of INT16 elements/);
  });

  it('answers binary outputs after the JSON when asked (binary_data_output, or per output binary_data)', () => {
    const req = rest({
      inputs: [],
      parameters: { binary_data_output: true },
      outputs: [{ name: 'b' }, { name: 'a', parameters: { binary_data: false } }],
    });
    const res = {
      model_name: 'm',
      model_version: '1',
      id: '42',
      outputs: [
        { name: 'a', datatype: 'INT16' as const, shape: [2], data: [1, -1] },
        { name: 'b', datatype: 'UINT16' as const, shape: [2], data: [1, 65535] },
      ],
    };
    const out = formatRestResponse(req, res);
    assert.equal(out.contentType, 'application/octet-stream');
    const head = JSON.parse(out.body.subarray(0, out.jsonLength!).toString());
    assert.deepEqual(head, {
      model_name: 'm',
      model_version: '1',
      id: '42',
      outputs: [
        { name: 'b', datatype: 'UINT16', shape: [2], parameters: { binary_data_size: 4 } },
        { name: 'a', datatype: 'INT16', shape: [2], data: [1, -1] },
      ],
    });
    assert.deepEqual([...out.body.subarray(out.jsonLength!)], [1, 0, 0xff, 0xff]);
    badRequest(
      () => formatRestResponse(rest({ inputs: [], outputs: [{ name: 'zzz' }] }), res),
      /requested output "zzz" is not produced by model m \(its outputs: a, b\)/,
    );
    const plain = formatRestResponse(rest({ inputs: [] }), res);
    assert.equal(plain.jsonLength, null);
    assert.equal(plain.contentType, 'application/json');
  });
});

describe('gRPC messages', () => {
  const msg = (o: Partial<ModelInferRequestMessage>): ModelInferRequestMessage => ({
    model_name: 'm',
    model_version: '',
    id: '',
    parameters: {},
    inputs: [],
    outputs: [],
    raw_input_contents: [],
    ...o,
  });
  const tensor = (name: string, datatype: string, shape: number[], contents: object | null = null) => ({
    name,
    datatype,
    shape: shape.map(String),
    parameters: {},
    contents,
  });

  it('typed contents and raw_input_contents give the same tensors; raw requests get raw outputs', () => {
    const typed = fromModelInferRequest(msg({ inputs: [tensor('a', 'INT64', [2], { int64_contents: ['-9007199254740993', '5'] })] }));
    const raw = fromModelInferRequest(
      msg({ inputs: [tensor('a', 'INT64', [2])], raw_input_contents: [encodeBinary([-9007199254740993n, 5], 'INT64')] }),
    );
    assert.deepEqual(typed.inputs, raw.inputs);
    assert.deepEqual(typed.inputs[0]!.data, [-9007199254740993n, 5], '64-bit integers stay exact');
    const res = { model_name: 'm', model_version: '1', id: 'i', outputs: typed.inputs };
    assert.deepEqual(toModelInferResponse(typed, res).outputs[0]!.contents, { int64_contents: ['-9007199254740993', '5'] });
    const rawOut = toModelInferResponse(raw, res);
    assert.equal(rawOut.outputs[0]!.contents, undefined);
    assert.deepEqual(rawOut.raw_output_contents, [encodeBinary([-9007199254740993n, 5], 'INT64')]);
  });

  it('refuses contents that do not match, as KServe does', () => {
    badRequest(
      () => fromModelInferRequest(msg({ inputs: [tensor('a', 'INT32', [1], { fp32_contents: [1] })] })),
      /a INT32 tensor has fp32_contents; use int_contents/,
    );
    badRequest(
      () => fromModelInferRequest(msg({ inputs: [tensor('a', 'INT8', [1], { int_contents: [200] })] })),
      /element 0 \(200\) is not a valid INT8 value/,
    );
    badRequest(
      () =>
        fromModelInferRequest(
          msg({ inputs: [tensor('a', 'INT32', [1]), tensor('b', 'INT32', [1])], raw_input_contents: [Buffer.alloc(4)] }),
        ),
      /2 input\(s\) but 1 raw_input_contents/,
    );
    badRequest(
      () =>
        fromModelInferRequest(msg({ inputs: [tensor('a', 'INT32', [1], { int_contents: [1] })], raw_input_contents: [Buffer.alloc(4)] })),
      /has contents while the request uses raw_input_contents/,
    );
    badRequest(() => fromModelInferRequest(msg({ inputs: [tensor('a', 'FP16', [1])] })), /FP16 data goes in raw_input_contents/);
    badRequest(
      () => fromModelInferRequest(msg({ inputs: [tensor('a', 'INT32', [2], { int_contents: [1] })] })),
      /shape \[2\] holds 2 element\(s\) but the data has 1/,
    );
  });

  it('FP32 contents read back as the decimals the client wrote (Java Float.toString)', () => {
    const r = fromModelInferRequest(
      msg({ inputs: [tensor('a', 'FP32', [3], { fp32_contents: [Math.fround(0.1), Math.fround(1e-7), 3] })] }),
    );
    assert.deepEqual(r.inputs[0]!.data, [0.1, 1e-7, 3]);
  });
});

describe('FP16', () => {
  it('every half-precision value survives half -> number -> half', () => {
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >> 10) & 0x1f;
      const frac = h & 0x3ff;
      if (exp === 0x1f && frac !== 0) {
        assert.ok(Number.isNaN(halfToFloat(h)));
        continue;
      }
      assert.equal(floatToHalf(halfToFloat(h)), h, `0x${h.toString(16)}`);
    }
  });

  it('rounds to nearest even and overflows to infinity, as numpy', () => {
    assert.equal(halfToFloat(floatToHalf(1 + 2 ** -11)), 1, 'a tie rounds to the even mantissa');
    assert.equal(halfToFloat(floatToHalf(1 + 3 * 2 ** -11)), 1 + 2 ** -9);
    assert.equal(halfToFloat(floatToHalf(65519)), 65504);
    assert.equal(halfToFloat(floatToHalf(65520)), Number.POSITIVE_INFINITY);
    assert.equal(halfToFloat(floatToHalf(2 ** -25)), 0);
    assert.equal(halfToFloat(floatToHalf(2 ** -24)), 2 ** -24);
  });
});

describe('outputs a handler returned as plain values (TorchServe kservev2)', () => {
  it('flattened, datatype as numpy infers it', () => {
    assert.deepEqual(
      flattenValue([
        [1, 2],
        [3, 4],
      ]),
      [1, 2, 3, 4],
    );
    assert.deepEqual(flattenValue(7), [7]);
    assert.equal(flattenValue([[1], [2, 3]]), null);
    assert.equal(inferDatatype([true, false]), 'BOOL');
    assert.equal(inferDatatype([1, true]), 'INT64');
    assert.equal(inferDatatype([1, 2.5]), 'FP64');
    assert.equal(inferDatatype(['a', 1]), 'BYTES');
    assert.equal(inferDatatype([]), 'FP64');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Random inputs (a seeded xorshift: a failure repeats; change SEED to explore).

const SEED = 0x13a;
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function randomElement(r: () => number, datatype: Datatype): Element {
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  switch (datatype) {
    case 'BOOL':
      return r() < 0.5;
    case 'UINT8':
      return int(0, 255);
    case 'INT8':
      return int(-128, 127);
    case 'UINT16':
      return int(0, 65535);
    case 'INT16':
      return int(-32768, 32767);
    case 'UINT32':
      return int(0, 2 ** 32 - 1);
    case 'INT32':
      return int(-(2 ** 31), 2 ** 31 - 1);
    case 'UINT64':
      return r() < 0.5 ? int(0, 2 ** 40) : 2n ** 63n + BigInt(int(0, 2 ** 30));
    case 'INT64':
      return r() < 0.5 ? int(-(2 ** 40), 2 ** 40) : -(2n ** 62n) - BigInt(int(0, 2 ** 30));
    case 'FP16':
      return halfToFloat(floatToHalf((r() - 0.5) * 1000));
    case 'FP32':
      return shortestFloat32(Math.fround((r() - 0.5) * 1e6));
    case 'FP64':
      return (r() - 0.5) * 1e300;
    case 'BYTES':
      return Buffer.from(Array.from({ length: int(0, 5) }, () => int(0, 255)));
  }
}

describe('random tensors round-trip (binary, gRPC contents, nested JSON)', () => {
  it('1,000 tensors of every datatype and shape', () => {
    const r = rng(SEED);
    for (let n = 0; n < 1000; n++) {
      const datatype = DATATYPES[Math.floor(r() * DATATYPES.length)]!;
      const shape = Array.from({ length: Math.floor(r() * 4) }, () => Math.floor(r() * 4));
      const count = shape.reduce((a, b) => a * b, 1);
      const data = Array.from({ length: count }, () => randomElement(r, datatype));
      const what = `tensor ${n} (${datatype} ${JSON.stringify(shape)})`;
      assert.deepEqual(decodeBinary(encodeBinary(data, datatype), datatype, count, 'x'), data, `${what}: binary`);
      if (datatype !== 'FP16') {
        const contents = toContents(data, datatype)!;
        // as the wire gives them back: fp32 as float32, 64-bit integers as strings
        assert.deepEqual(fromContents(contents, datatype, 'x'), data, `${what}: gRPC contents`);
      }
      if (datatype !== 'BYTES' && datatype !== 'INT64' && datatype !== 'UINT64') {
        const nested = shape.length === 0 ? [reshape(data, shape)] : reshape(data, shape);
        assert.deepEqual(flattenJsonData(JSON.parse(JSON.stringify(nested)), datatype, 'x'), data, `${what}: nested JSON`);
      }
      assert.deepEqual(resolveShape(shape, count, 'x'), shape);
    }
  });

  it('random bytes and random JSON never fail with anything but a one-line BAD_REQUEST', () => {
    const r = rng(SEED + 1);
    const pieces = [
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      '"inputs"',
      '"name"',
      '"shape"',
      '"datatype"',
      '"data"',
      '"INT8"',
      '"BYTES"',
      '-1',
      '0',
      '3',
      '1.5',
      'true',
      'null',
      '"x"',
      '"parameters"',
      '"binary_data_size"',
    ];
    for (let n = 0; n < 2000; n++) {
      const text = Array.from({ length: Math.floor(r() * 30) }, () => pieces[Math.floor(r() * pieces.length)]).join('');
      const tail = Buffer.from(Array.from({ length: Math.floor(r() * 16) }, () => Math.floor(r() * 256)));
      const body = Buffer.concat([Buffer.from(text), tail]);
      for (const header of [undefined, String(text.length)]) {
        try {
          parseRestRequest(body, header);
        } catch (err) {
          assert.ok(
            isMarError(err) && err.code === 'BAD_REQUEST' && !err.message.includes('\n'),
            `${JSON.stringify(text)}: ${String(err)}`,
          );
        }
      }
      for (const datatype of DATATYPES) {
        try {
          decodeBinary(tail, datatype, -1, 'x');
        } catch (err) {
          assert.ok(isMarError(err) && err.code === 'BAD_REQUEST', String(err));
        }
      }
    }
  });
});

describe('shapes and JSON', () => {
  it('checkShape takes arrays of integers; stringifyJson writes 64-bit integers exactly', () => {
    assert.deepEqual(checkShape([1, 0, -1], 'x'), [1, 0, -1]);
    badRequest(() => resolveShape([2, -1], 3, 'input "x"'), /3 element\(s\) cannot fill shape \[2,-1\]/);
    assert.equal(stringifyJson({ a: [2n ** 63n - 1n, 1] }), '{"a":[9223372036854775807,1]}');
  });
});
