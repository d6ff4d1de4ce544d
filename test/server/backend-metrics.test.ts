import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { parseMetricLine } from '../../src/runtime/metrics.js';
import { BackendMetrics } from '../../src/server/metrics/backend-metrics.js';
import { parsePrometheusText } from '../helpers/prom-text.js';

const line = (text: string) => parseMetricLine(`[METRICS]${text}|#hostname:h1,1700000000,req-1`)!;

test("workers' metric lines: types, accumulation, and what Prometheus cannot hold is dropped with one warning", async () => {
  const registry = new Registry();
  const warnings: string[] = [];
  const b = new BackendMetrics({ registry }, (msg) => warnings.push(msg));
  b.record(line('Hits.Count:2|#ModelName:m,Level:Model'));
  b.record(line('Hits.Count:3|#ModelName:m,Level:Model'));
  b.record(line('Hits.Count:-1|#ModelName:m,Level:Model'));
  b.record(line('Temp.Percent:40|#ModelName:m,Level:Model'));
  b.record(line('Temp.Percent:41|#ModelName:m,Level:Model'));
  b.record(parseMetricLine('[METRICS]Sizes.ms:5|#ModelName:m|#type:HISTOGRAM|#hostname:h1,1700000000')!);
  b.record(line('Temp.Percent:1|#Other:x'));
  b.record(line('9lives.Count:1|#ModelName:m'));
  b.record(line('Bad.Count:1|#my-dim:x'));
  b.record(line('Bad.Count:1|#my-dim:x'));
  const f = parsePrometheusText(await registry.metrics());
  assert.deepEqual(f.get('Hits')!.samples, [{ name: 'Hits', labels: { ModelName: 'm', Level: 'Model', Hostname: 'h1' }, value: 5 }]);
  assert.deepEqual([f.get('Temp')!.type, f.get('Temp')!.samples.map((s) => s.value)], ['gauge', [41]]);
  assert.equal(f.get('Sizes')!.type, 'histogram');
  assert.equal(f.get('Sizes')!.samples.find((s) => s.name === 'Sizes_count')!.value, 1);
  assert.equal(f.has('9lives'), false);
  assert.equal(f.has('Bad'), false);
  assert.equal(warnings.length, 4, warnings.join('\n'));
  assert.match(warnings.join('\n'), /counter Hits got a negative value/);
  assert.match(warnings.join('\n'), /metric Temp: dimensions Other differ from ModelName,Level,Hostname/);
});

test('the strict text parser refuses what the exposition format does not allow', () => {
  const bad = [
    'a 1', // no final newline
    'a{b="1"} x\n',
    'a{b=1} 1\n',
    'a{b="1",b="2"} 1\n',
    '# TYPE a counter\n# TYPE a gauge\n',
    'a 1\nb 1\na 2\n',
    'a 1\na 1\n',
    '# TYPE h histogram\nh 1\n',
  ];
  for (const text of bad) assert.throws(() => parsePrometheusText(text), Error, JSON.stringify(text));
  const ok = parsePrometheusText('# HELP a x\\ny\n# TYPE a counter\na{b="q\\"",} 1.5e3 1700000000\n\n# comment\n');
  assert.deepEqual(ok.get('a'), { name: 'a', type: 'counter', help: 'x\ny', samples: [{ name: 'a', labels: { b: 'q"' }, value: 1500 }] });
});
