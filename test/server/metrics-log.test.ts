import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { LineStamp } from '../../src/server/log-file.js';
import { LogLineEncoder, MetricsLog } from '../../src/server/metrics/metrics-log.js';
import { FRONTEND_METRICS, fillLogLine, javaDouble, logLineTemplate, metricValueText } from '../../src/server/metrics/ts-metrics.js';

test('metric values print as Java Double.toString: latencies in µs from whole nanoseconds, counts, ms and any double', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 45 }), (ns) => assert.equal(metricValueText(ns / 1000), javaDouble(ns / 1000))),
    { numRuns: 20_000 },
  );
  fc.assert(
    fc.property(fc.double(), (v) => assert.equal(metricValueText(v), javaDouble(v))),
    { numRuns: 20_000 },
  );
  assert.deepEqual([0, 7, 1023, 1024, 0.001, 1.5, 290371.129, 9999999.999, 1e7, 0.0005].map(metricValueText), [
    '0.0',
    '7.0',
    '1023.0',
    '1024.0',
    '0.001',
    '1.5',
    '290371.129',
    '9999999.999',
    '1.0E7',
    '5.0E-4',
  ]);
});

test('a metrics log writes each line with the time it was recorded at, in order, and close() writes what is left', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mar-metrics-log-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_950 });
  const log = MetricsLog.open(dir, 'ts_metrics.log', 'metrics_location', () => {});
  const queue = logLineTemplate('QueueTime', FRONTEND_METRICS.QueueTime, ['Host', 'h']);
  const latency = logLineTemplate('ts_inference_latency_microseconds', FRONTEND_METRICS.ts_inference_latency_microseconds, [
    'm',
    'default',
    'h',
  ]);
  log.add(queue, 3);
  t.mock.timers.tick(100); // formatted and handed to the file
  log.add(latency, 1234.5);
  t.mock.timers.tick(30); // the next second: recorded, not formatted yet
  log.add(queue, 0, 'req-1');
  t.mock.timers.reset();
  await log.close();
  assert.deepEqual((await readFile(join(dir, 'ts_metrics.log'), 'utf8')).split('\n'), [
    '2023-11-14T22:13:20.950Z - QueueTime.Milliseconds:3.0|#Level:Host|#hostname:h,timestamp:1700000000',
    '2023-11-14T22:13:21.050Z - ts_inference_latency_microseconds.Microseconds:1234.5|#model_name:m,model_version:default|#hostname:h,timestamp:1700000001',
    '2023-11-14T22:13:21.080Z - QueueTime.Milliseconds:0.0|#Level:Host|#hostname:h,requestID:req-1,timestamp:1700000001',
    '',
  ]);
});

test("the metrics log's bytes are its lines as fillLogLine spells them, UTF-8 encoded, whatever the names, values and ids", () => {
  const text = fc.string({ unit: 'binary', maxLength: 40 });
  const line = fc.record({
    name: fc.oneof(fc.constantFrom('QueueTime', 'ts_inference_latency_microseconds'), text),
    values: fc.array(text, { minLength: 1, maxLength: 4 }),
    value: fc.oneof(
      fc.integer({ min: 0, max: 2 ** 45 }).map((ns) => ns / 1000),
      fc.double(),
    ),
    ids: fc.option(fc.oneof(fc.uuid(), text), { nil: undefined }),
    at: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  });
  fc.assert(
    fc.property(fc.array(line, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 3 }), (lines, takes) => {
      const encoder = new LogLineEncoder();
      const stamp = new LineStamp();
      const chunks: Buffer[] = [];
      let expected = '';
      lines.forEach((l, i) => {
        const t = logLineTemplate(l.name, FRONTEND_METRICS.QueueTime, l.values);
        encoder.line(t, l.value, l.ids, l.at);
        expected += `${stamp.at(l.at)}${fillLogLine(t, l.value, l.ids, l.at)}\n`;
        if (i % takes === 0) chunks.push(encoder.take());
      });
      chunks.push(encoder.take());
      assert.ok(Buffer.concat(chunks).equals(Buffer.from(expected, 'utf8')));
    }),
    { numRuns: 3_000 },
  );
  // a batch far larger than the encoder's first buffer
  const encoder = new LogLineEncoder();
  const t = logLineTemplate('QueueTime', FRONTEND_METRICS.QueueTime, ['Host', 'h']);
  const id = 'é'.repeat(5000);
  for (let i = 0; i < 100; i++) encoder.line(t, i, id, 1_700_000_000_000 + i);
  const out = encoder.take().toString('utf8').split('\n');
  assert.equal(out.length, 101);
  assert.ok(out[99]!.endsWith(`${id},timestamp:1700000000`));
});
