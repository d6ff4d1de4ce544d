import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ServerMetrics } from '../../src/server/metrics/server-metrics.js';
import { FRONTEND_METRICS, fillLogLine, helpText, javaDouble, logLineTemplate } from '../../src/server/metrics/ts-metrics.js';
import { type PromFamily, parsePrometheusText } from '../helpers/prom-text.js';
import { tempDir } from '../helpers/util.js';
import { http, type RunningServer, registerPy, startServer } from './server-helpers.js';

const HOST = hostname();

function metricsUrl(s: RunningServer): string {
  return s.server.listeners.find((l) => l.api === 'metrics')!.url;
}

/** Scrapes until `ready` accepts the parsed families: worker metric lines arrive after the reply they belong to. */
async function scrapeUntil(
  s: RunningServer,
  ready: (f: Map<string, PromFamily>) => boolean,
  path = '/metrics',
): Promise<Map<string, PromFamily>> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    const r = await http(metricsUrl(s), 'GET', path);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const families = parsePrometheusText(r.text);
    if (ready(families)) return families;
    if (performance.now() > deadline) assert.fail(`metrics never became ready:\n${r.text}`);
  }
}

/** The value of the one sample of `family` whose labels include `labels`; undefined when none. */
function sample(f: Map<string, PromFamily>, family: string, labels: Record<string, string>): number | undefined {
  const found = f.get(family)?.samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? [];
  assert.ok(found.length <= 1, `${family} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

test('javaDouble prints metric values as Java Double.toString does', () => {
  assert.deepEqual([1, 0, 0.25, 290371.129, 1e7, 1.5e-5, -3].map(javaDouble), [
    '1.0',
    '0.0',
    '0.25',
    '290371.129',
    '1.0E7',
    '1.5E-5',
    '-3.0',
  ]);
});

test('a log line prints its value as javaDouble does, small whole values included (they are made once)', () => {
  const t = logLineTemplate('QueueTime', FRONTEND_METRICS.QueueTime, ['Host', 'h']);
  for (const v of [0, -0, 1, 7, 1023, 1024, 2.5, 1e7, -1, 0.001, 1023.5]) {
    assert.match(
      fillLogLine(t, v),
      new RegExp(`^QueueTime\\.Milliseconds:${javaDouble(v).replace(/[.+]/g, '\\$&')}\\|#Level:Host\\|#hostname:h,timestamp:\\d+$`),
    );
  }
});

test('metrics API (metrics_mode=prometheus): a scrape after real predictions, parsed strictly', async (t) => {
  const s = await startServer(t, { props: { metrics_address: 'http://127.0.0.1:0', metrics_mode: 'prometheus' } });
  assert.ok(s.lines.some((l) => /^Metrics API bind to: http:\/\/127\.0\.0\.1:\d+$/.test(l)));
  assert.equal((await registerPy(s, 'mx', 'mms_imports:handle')).status, 200);
  assert.equal((await registerPy(s, 'sum', 'ts_base_handler')).status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await http(s.inference, 'POST', '/predictions/mx', '{}')).status, 200);
  assert.equal((await http(s.inference, 'POST', '/predictions/mx/1.0', '{}')).status, 200);
  for (let i = 0; i < 2; i++) {
    const r = await http(s.inference, 'POST', '/predictions/sum', '[1, 2]', { 'content-type': 'application/json' });
    assert.equal(r.status, 200, r.text);
  }
  assert.equal((await http(s.inference, 'POST', '/predictions/nope', 'x')).status, 404);

  // the handler's last batch prints its metrics after the reply: wait for them
  const f = await scrapeUntil(s, (f) => sample(f, 'Custom', { ModelName: 'mx' }) === 28 && f.has('HandlerTime'));

  await t.test('every TorchServe frontend metric is there with its type, help text and labels', () => {
    for (const [name, def] of Object.entries(FRONTEND_METRICS)) {
      const fam = f.get(name);
      assert.ok(fam, `${name} is exposed`);
      assert.equal(fam.type, def.type, name);
      assert.equal(fam.help, helpText(def.type, def.unit));
      for (const smp of fam.samples) assert.deepEqual(Object.keys(smp.labels).sort(), [...def.labels].sort(), name);
    }
  });

  await t.test('per model and requested version: requests, latency and queue latency', () => {
    const mx = { model_name: 'mx', model_version: 'default', hostname: HOST };
    assert.equal(sample(f, 'ts_inference_requests_total', mx), 3);
    assert.equal(sample(f, 'ts_inference_requests_total', { ...mx, model_version: '1.0' }), 1);
    assert.equal(sample(f, 'ts_inference_requests_total', { model_name: 'sum', model_version: 'default' }), 2);
    assert.equal(sample(f, 'ts_inference_requests_total', { model_name: 'nope' }), undefined, 'unknown models are not counted');
    const latency = sample(f, 'ts_inference_latency_microseconds', mx)!;
    const queue = sample(f, 'ts_queue_latency_microseconds', mx)!;
    assert.ok(latency > 0 && queue >= 0 && latency > queue, `latency ${latency} µs, queue ${queue} µs`);
  });

  await t.test('responses by status class; queue, worker thread and worker load times; host gauges', () => {
    const host = { Level: 'Host', Hostname: HOST };
    // 2 registers + 6 predictions (+ the scrapes before this one); 1 unknown model
    assert.ok(sample(f, 'Requests2XX', host)! >= 8);
    assert.equal(sample(f, 'Requests4XX', host), 1);
    assert.equal(sample(f, 'Requests5XX', host), undefined);
    assert.ok(sample(f, 'QueueTime', host)! >= 0);
    assert.ok(sample(f, 'WorkerThreadTime', host)! >= 0);
    const loads = f.get('WorkerLoadTime')!.samples;
    assert.deepEqual(loads.map((x) => x.labels['WorkerName']!.replace(/^W-\d+-/, 'W-<port>-')).sort(), [
      'W-<port>-mx_1.0',
      'W-<port>-sum_1.0',
    ]);
    assert.ok(loads.every((x) => x.value > 0 && x.labels['Level'] === 'Host'));
    const cpu = sample(f, 'CPUUtilization', host)!;
    assert.ok(cpu >= 0 && cpu <= 100, `CPU ${cpu}`);
    assert.ok(sample(f, 'MemoryAvailable', host)! > 0 && sample(f, 'MemoryUsed', host)! > 0);
    assert.ok(sample(f, 'MemoryUtilization', host)! > 0 && sample(f, 'MemoryUtilization', host)! <= 100);
    assert.ok(sample(f, 'DiskAvailable', host)! > 0 && sample(f, 'DiskUtilization', host)! <= 100 && sample(f, 'DiskUsage', host)! > 0);
  });

  await t.test("the handlers' context.metrics reach the same endpoint, labelled with their dimensions and Hostname", () => {
    const mx = { ModelName: 'mx', Level: 'Model', Hostname: HOST };
    assert.equal(f.get('PredictionTime')!.type, 'gauge');
    assert.equal(f.get('PredictionTime')!.help, helpText('gauge', 'ms'));
    assert.ok(sample(f, 'PredictionTime', mx)! >= 0);
    assert.ok(sample(f, 'HandlerTime', { ...mx, ModelName: 'sum' })! >= 0, 'a BaseHandler subclass reports HandlerTime');
    assert.deepEqual([f.get('Requests')!.type, sample(f, 'Requests', mx)], ['counter', 4]);
    assert.deepEqual([f.get('LoadCount')!.type, sample(f, 'LoadCount', mx)], ['counter', 1]);
    assert.deepEqual([f.get('Work')!.type, sample(f, 'Work', mx)], ['gauge', 1.5]);
    assert.deepEqual([f.get('Payload')!.help, sample(f, 'Payload', mx)], [helpText('gauge', 'Kilobytes'), 2]);
    assert.deepEqual([f.get('Load')!.type, sample(f, 'Load', mx)], ['gauge', 50]);
    assert.deepEqual([f.get('Custom')!.type, sample(f, 'Custom', mx)], ['counter', 28]);
  });

  await t.test("the text is TorchServe's (simpleclient 0.9): a comma after every label, values as Java doubles", async () => {
    const text = (await http(metricsUrl(s), 'GET', '/metrics')).text;
    // the assertion of TorchServe's own inference API test collection (test/postman), verbatim
    assert.match(text, /.*Requests2XX\{Level="Host",Hostname=".*",\} \d+\.\d+.*/);
    assert.match(text, /^ts_inference_requests_total\{model_name="mx",model_version="default",hostname="[^"]+",\} 3\.0$/m);
    assert.doesNotMatch(text, /\n\n/, 'no blank lines');
  });

  await t.test('?name[]= selects metric families; other paths of the metrics listener are 404', async () => {
    const q = '/metrics?name[]=ts_inference_requests_total&name[]=QueueTime&name[]=nosuch';
    const only = await scrapeUntil(s, () => true, q);
    assert.deepEqual([...only.keys()].sort(), ['QueueTime', 'ts_inference_requests_total']);
    const encoded = await scrapeUntil(s, () => true, '/metrics?name%5B%5D=Requests4XX');
    assert.deepEqual([...encoded.keys()], ['Requests4XX']);
    const none = await http(metricsUrl(s), 'GET', '/metrics?name[]=nosuch');
    assert.deepEqual([none.status, none.text], [200, '']);
    assert.equal((await http(metricsUrl(s), 'GET', '/models')).status, 404);
    assert.equal((await http(metricsUrl(s), 'POST', '/predictions/mx', '{}')).status, 404);
    assert.equal((await http(s.inference, 'GET', '/metrics')).status, 404, 'the metrics API is only on metrics_address');
  });
});

test('a scrape is answered while a prediction is in flight (it never waits for inference)', async (t) => {
  const s = await startServer(t, { props: { metrics_address: 'http://127.0.0.1:0', metrics_mode: 'prometheus' } });
  assert.equal((await registerPy(s, 'hang', 'hang:handle')).status, 200);
  const pending = http(s.inference, 'POST', '/predictions/hang', 'hang');
  await s.waitLine(/hang: sleeping/);
  const f = await scrapeUntil(s, () => true);
  assert.equal(sample(f, 'ts_inference_requests_total', { model_name: 'hang' }), 1);
  assert.equal(sample(f, 'ts_inference_latency_microseconds', { model_name: 'hang' }), 0, 'not answered yet');
  // the hanging batch ends with the server (stopped after the test)
  pending.catch(() => {});
});

test('metrics_mode=log: TorchServe log lines in ts_metrics.log and model_metrics.log; the endpoint is empty', async (t) => {
  const s = await startServer(t, {
    props: { metrics_address: 'http://127.0.0.1:0', metrics_mode: 'log', metrics_location: 'logs' },
  });
  assert.equal((await registerPy(s, 'mx', 'mms_imports:handle')).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await http(s.inference, 'POST', '/predictions/mx', '{}')).status, 200);
  const empty = await http(metricsUrl(s), 'GET', '/metrics');
  assert.deepEqual([empty.status, empty.text], [200, '']);
  const logs = join(s.dir, 'logs');
  const readUntil = async (file: string, re: RegExp, count = 1): Promise<string[]> => {
    const deadline = performance.now() + 15_000;
    for (;;) {
      const lines = (await readFile(join(logs, file), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
      if (lines.filter((l) => re.test(l)).length >= count) return lines;
      if (performance.now() > deadline) assert.fail(`${file} never had ${count} line(s) matching ${re}:\n${lines.join('\n')}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const h = HOST.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const at = '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z - ';
  const ts = await readUntil('ts_metrics.log', /Requests2XX/, 3);
  const expectTs = [
    `ts_inference_requests_total\\.Count:1\\.0\\|#model_name:mx,model_version:default\\|#hostname:${h},timestamp:\\d+$`,
    `ts_inference_latency_microseconds\\.Microseconds:\\d+(\\.\\d+)?(E\\d+)?\\|#model_name:mx,model_version:default\\|#hostname:${h},timestamp:\\d+$`,
    `ts_queue_latency_microseconds\\.Microseconds:[\\d.E-]+\\|#model_name:mx,model_version:default\\|#hostname:${h},timestamp:\\d+$`,
    `QueueTime\\.Milliseconds:\\d+\\.0\\|#Level:Host\\|#hostname:${h},timestamp:\\d+$`,
    `WorkerThreadTime\\.Milliseconds:[\\d.E-]+\\|#Level:Host\\|#hostname:${h},timestamp:\\d+$`,
    `WorkerLoadTime\\.Milliseconds:[\\d.E]+\\|#WorkerName:W-\\d+-mx_1\\.0,Level:Host\\|#hostname:${h},timestamp:\\d+$`,
    `Requests2XX\\.Count:1\\.0\\|#Level:Host\\|#hostname:${h},timestamp:\\d+$`,
  ];
  for (const re of expectTs)
    assert.ok(
      ts.some((l) => new RegExp(at + re).test(l)),
      `ts_metrics.log has ${re}:\n${ts.join('\n')}`,
    );
  const model = await readUntil('model_metrics.log', /Custom\.Count/, 2);
  const expectModel = [
    `PredictionTime\\.ms:[\\d.E-]+\\|#ModelName:mx,Level:Model\\|#hostname:${h},requestID:[0-9a-f-]{36},timestamp:\\d+$`,
    `Custom\\.Count:7\\.0\\|#ModelName:mx,Level:Model\\|#hostname:${h},requestID:[0-9a-f-]{36},timestamp:\\d+$`,
    `LoadCount\\.Count:1\\.0\\|#ModelName:mx,Level:Model\\|#hostname:${h},requestID:[0-9a-f-]+,timestamp:\\d+$`,
  ];
  for (const re of expectModel)
    assert.ok(
      model.some((l) => new RegExp(at + re).test(l)),
      `model_metrics.log has ${re}:\n${model.join('\n')}`,
    );
});

test('metrics_mode=log writes the host gauges as TorchServe lines', async (t) => {
  const dir = await tempDir(t);
  const m = new ServerMetrics({ mode: 'log', logDir: dir, log: (msg) => assert.fail(msg) });
  m.open();
  await m.logHostGauges();
  await m.close();
  const lines = (await readFile(join(dir, 'ts_metrics.log'), 'utf8')).trimEnd().split('\n');
  const names = lines.map((l) => /^\S+ - (\w+)\.(\w+):[\d.E-]+\|#Level:Host\|#hostname:([^,]+),timestamp:\d+$/.exec(l)?.slice(1));
  assert.deepEqual(names, [
    ['CPUUtilization', 'Percent', HOST],
    ['MemoryUsed', 'Megabytes', HOST],
    ['MemoryAvailable', 'Megabytes', HOST],
    ['MemoryUtilization', 'Percent', HOST],
    ['DiskUsage', 'Gigabytes', HOST],
    ['DiskUtilization', 'Percent', HOST],
    ['DiskAvailable', 'Gigabytes', HOST],
  ]);
});
