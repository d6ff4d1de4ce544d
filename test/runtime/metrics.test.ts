import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  formatMetricLine,
  isWellFormedMetricLine,
  metricFields,
  metricFieldsByRegex,
  parseMetricLine,
  parseShortPredictionTime,
  predictionTimeSeries,
  splitMetricLine,
} from '../../src/runtime/metrics.js';

test('parses the MMS line of the reference (verified PredictionTime with two request ids)', () => {
  const line = '[METRICS]PredictionTime.Milliseconds:0.06|#ModelName:probe,Level:Model|#hostname:vm,1795550332,req-1,req-2';
  assert.deepEqual(parseMetricLine(line), {
    name: 'PredictionTime',
    unit: 'Milliseconds',
    value: 0.06,
    dimensions: [
      ['ModelName', 'probe'],
      ['Level', 'Model'],
    ],
    dimensionsText: 'ModelName:probe,Level:Model',
    hostname: 'vm',
    timestamp: 1795550332,
    requestIds: ['req-1', 'req-2'],
    raw: line.slice('[METRICS]'.length),
  });
});

test('parses error metrics without request ids, TorchServe lines with a type, and an INFO prefix', () => {
  const err = parseMetricLine('[METRICS]Oops.unit:1|#Level:Error|#hostname:h,1700000000');
  assert.deepEqual([err?.name, err?.unit, err?.value, err?.dimensions, err?.requestIds], ['Oops', 'unit', 1, [['Level', 'Error']], []]);
  const ts = parseMetricLine('INFO > [METRICS]HandlerTime.ms:12.5|#ModelName:m,Level:Model|#type:GAUGE|#hostname:h,1700000000,abc');
  assert.deepEqual([ts?.name, ts?.unit, ts?.value, ts?.type, ts?.requestIds], ['HandlerTime', 'ms', 12.5, 'GAUGE', ['abc']]);
});

test('rejects lines that are not well-formed metrics', () => {
  assert.equal(parseMetricLine('hello'), null);
  assert.equal(parseMetricLine('[METRICS]no value here'), null);
  assert.equal(parseMetricLine('[METRICS]A.B:x|#d|#hostname:h,1'), null);
});

test('lines with the same dimensions share one parsed copy, which nobody can change', () => {
  const a = parseMetricLine('[METRICS]A.ms:1|#ModelName:m,Level:Model|#hostname:h,1700000000,r1')!;
  const b = parseMetricLine('[METRICS]B.ms:2|#ModelName:m,Level:Model|#hostname:h,1700000001,r2')!;
  assert.equal(a.dimensions, b.dimensions);
  assert.throws(() => (a.dimensions as Array<[string, string]>).push(['X', 'y']), TypeError);
  assert.notEqual(parseMetricLine('[METRICS]A.ms:1|#ModelName:n,Level:Model|#hostname:h,1')!.dimensions, a.dimensions);
});

test('formatMetricLine writes what parseMetricLine reads', () => {
  const m = {
    name: 'Requests',
    unit: 'Count',
    value: 3,
    dimensions: [
      ['ModelName', 'm'],
      ['Level', 'Model'],
    ] as Array<[string, string]>,
    hostname: 'h',
    timestamp: 1700000000,
    requestIds: ['a', 'b'],
  };
  const line = formatMetricLine(m);
  assert.equal(line, '[METRICS]Requests.Count:3|#ModelName:m,Level:Model|#hostname:h,1700000000,a,b');
  const back = parseMetricLine(line)!;
  assert.deepEqual([back.name, back.unit, back.value, back.dimensions, back.hostname, back.timestamp, back.requestIds], Object.values(m));
});

test('isWellFormedMetricLine agrees with parseMetricLine (the worker drops well-formed lines nobody consumes, logs the rest)', () => {
  for (const line of [
    '[METRICS]PredictionTime.Milliseconds:0.06|#ModelName:probe,Level:Model|#hostname:vm,1795550332,req-1,req-2',
    '[METRICS]Oops.unit:1|#Level:Error|#hostname:h,1700000000',
    'INFO > [METRICS]HandlerTime.ms:12.5|#ModelName:m,Level:Model|#type:GAUGE|#hostname:h,1700000000,abc',
    '[METRICS]A.B:1-2|#d|#hostname:h,1',
    '[METRICS]A.B:1|#d|#hostname:h,soon',
    '[METRICS]A.B:x|#d|#hostname:h,1',
    '[METRICS]no value here',
    'hello',
  ]) {
    assert.equal(isWellFormedMetricLine(line), parseMetricLine(line) !== null, line);
  }
});

test('the regex-free reading of a metric line agrees with the regex on every line it accepts (fast-check)', () => {
  // pieces that hit the grammar's edges: separators, a type or hostname segment, spaces and line breaks
  const piece = fc.string({
    unit: fc.constantFrom(
      'a',
      'Z',
      '_',
      '9',
      '0',
      '.',
      ':',
      '|',
      '#',
      ',',
      '-',
      'e',
      '+',
      ' ',
      '\n',
      '\u2028',
      'type:',
      'hostname:',
      '|#',
      'é',
    ),
    maxLength: 10,
  });
  const shaped = fc
    .tuple(piece, piece, piece, piece, fc.option(piece), piece, piece, fc.option(piece))
    .map(
      ([name, unit, value, dims, type, host, ts, ids]) =>
        `${name}.${unit}:${value}|#${dims}${type === null ? '' : `|#type:${type}`}|#hostname:${host},${ts}${ids === null ? '' : `,${ids}`}`,
    );
  const plain = fc
    .tuple(
      fc.stringMatching(/^\w{1,12}$/),
      fc.stringMatching(/^\w{1,8}$/),
      fc.double({ noNaN: true }).map(String),
      fc.stringMatching(/^[\w:,]{0,20}$/),
      fc.option(fc.constantFrom('GAUGE', 'COUNTER', '')),
      fc.stringMatching(/^[\w.-]{1,12}$/),
      fc.integer({ min: 0 }).map(String),
      fc.option(fc.string({ unit: fc.constantFrom('a', '1', ',', '-', ' ', '|', '\n', '\r', '\u2028', '\u2029'), maxLength: 12 })),
    )
    .map(
      ([name, unit, value, dims, type, host, ts, ids]) =>
        `${name}.${unit}:${value}|#${dims}${type === null ? '' : `|#type:${type}`}|#hostname:${host},${ts}${ids === null ? '' : `,${ids}`}`,
    );
  let accepted = 0;
  fc.assert(
    fc.property(fc.oneof(shaped, plain, fc.string()), (raw) => {
      const fast = splitMetricLine(raw);
      if (fast === undefined) return;
      accepted++;
      assert.deepEqual(fast, metricFieldsByRegex(raw), raw);
    }),
    { numRuns: 5000 },
  );
  // the common form takes the fast path (plain lines are a third of the runs; some of them have line breaks)
  assert.ok(accepted > 300, `only ${accepted} lines were read without the regex`);
  assert.equal(metricFields('PredictionTime.ms:0.031|#ModelName:m,Level:Model|#hostname:h,1700000000,r1')?.[2], '0.031');
});

test("a worker's short PredictionTime reads as the whole line it stands for, in Python's spelling of the value", () => {
  const series = predictionTimeSeries('m', 'vm');
  const cases: Array<[string, string[], string]> = [
    ['[P]0,1700000000', ['r1'], 'PredictionTime.Milliseconds:0.0|#ModelName:m,Level:Model|#hostname:vm,1700000000,r1'],
    ['[P]1234,1700000001', ['a', 'b'], 'PredictionTime.Milliseconds:12.34|#ModelName:m,Level:Model|#hostname:vm,1700000001,a,b'],
    ['[P]100,1700000002', [], 'PredictionTime.Milliseconds:1.0|#ModelName:m,Level:Model|#hostname:vm,1700000002'],
    ['[P]7,1700000003', ['x'], 'PredictionTime.Milliseconds:0.07|#ModelName:m,Level:Model|#hostname:vm,1700000003,x'],
  ];
  for (const [line, ids, whole] of cases) {
    const short = parseShortPredictionTime(line, series, ids)!;
    assert.equal(short.raw, whole);
    const { raw: _raw, ...fields } = parseMetricLine(`[METRICS]${whole}`)!;
    assert.deepEqual(
      { ...fields },
      {
        name: short.name,
        unit: short.unit,
        value: short.value,
        dimensions: short.dimensions,
        dimensionsText: short.dimensionsText,
        hostname: short.hostname,
        timestamp: short.timestamp,
        requestIds: short.requestIds,
      },
    );
  }
  for (const bad of ['[P]', '[P]1', '[P]a,1', '[P]1,2,3', '[P]-1,2', '[P] 1,2', '[P]1,2 ']) {
    assert.equal(parseShortPredictionTime(bad, series, ['r']), null, bad);
  }
});
