import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/util.js';
import { http, registerPy, startServer, startServerProcess } from './server-helpers.js';

test("metrics_location: the workers' metrics go to model_metrics.log, one line per metric, with the request id", async (t) => {
  const s = await startServer(t, { props: { metrics_location: 'logs' } });
  await s.waitLine(/Model metrics log: .*model_metrics\.log/);
  assert.equal((await registerPy(s, 'noop', 'noop:handle')).status, 200);
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await http(s.inference, 'POST', '/predictions/noop', 'x');
    assert.equal(r.status, 200);
    ids.push(r.headers['x-request-id'] as string);
  }
  await s.stop(); // the log is flushed and closed at shutdown
  const lines = (await readFile(join(s.dir, 'logs', 'model_metrics.log'), 'utf8')).trimEnd().split('\n');
  const predictionTimes = lines.filter((l) => / - PredictionTime\./.test(l));
  assert.equal(predictionTimes.length, 2, lines.join('\n'));
  for (const [i, line] of predictionTimes.entries()) {
    assert.match(
      line,
      /^\d{4}-\d\d-\d\dT[\d:.]+Z - PredictionTime\.Milliseconds:[\d.]+\|#ModelName:noop,Level:Model\|#hostname:[^,]+,\d+,/,
    );
    assert.ok(line.endsWith(`,${ids[i]}`), `${line} names request ${ids[i]}`);
  }
});

test('log_location: access_log.log has one line per request, as MMS writes it', async (t) => {
  const s = await startServer(t, { props: { log_location: 'logs' } });
  await s.waitLine(/Access log: .*access_log\.log/);
  assert.equal((await http(s.inference, 'GET', '/ping')).status, 200);
  assert.equal((await http(s.inference, 'POST', '/predictions/nosuch?x=1', 'x')).status, 404);
  assert.equal((await http(s.management, 'GET', '/models')).status, 200);
  await s.stop();
  const lines = (await readFile(join(s.dir, 'logs', 'access_log.log'), 'utf8')).trimEnd().split('\n');
  assert.equal(lines.length, 3, lines.join('\n'));
  const shape = (request: string, status: number): RegExp =>
    new RegExp(`^\\d{4}-[\\d-]+T[\\d:.]+Z - /127\\.0\\.0\\.1:\\d+ "${request.replace(/[?.]/g, '\\$&')} HTTP/1\\.1" ${status} \\d+$`);
  assert.match(lines[0]!, shape('GET /ping', 200));
  assert.match(lines[1]!, shape('POST /predictions/nosuch?x=1', 404));
  assert.match(lines[2]!, shape('GET /models', 200));
});

test('metrics_location that cannot be created: one line, exit 1, before listening', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'blocker'), 'a file, not a directory');
  const s = await startServerProcess(t, { noWait: true, props: { metrics_location: join(dir, 'blocker', 'logs') } });
  assert.equal((await s.exited).code, 1);
  const errors = s.lines.filter((l) => l.startsWith('error:'));
  assert.equal(errors.length, 1, s.lines.join('\n'));
  assert.match(errors[0]!, /cannot create metrics_location .*blocker\/logs: /);
  assert.ok(!s.lines.some((l) => /bind to:/.test(l)), 'nothing listened');
});
