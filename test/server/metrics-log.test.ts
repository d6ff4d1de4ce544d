import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MetricsLog } from '../../src/server/metrics/metrics-log.js';
import { FRONTEND_METRICS, javaDouble, logLineTemplate, metricValueText } from '../../src/server/metrics/ts-metrics.js';

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
