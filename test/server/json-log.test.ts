/**
 * log_format=json: one JSON object per line on stdout (pino), for a cluster's log shipper: server messages,
 * worker lines and pool events with model, version and worker pid, one access record per request with its id,
 * status and latency. The default stays the readable text lines.
 */

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { ServerLogger } from '../../src/server/logger.js';
import { tempDir } from '../helpers/util.js';
import { http, registerPy, startServerProcess } from './server-helpers.js';

type Record = { [key: string]: unknown };

/** Every line as JSON; fails the test on the first line that is not one object. */
function records(lines: readonly string[]): Record[] {
  return lines.map((line) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      assert.fail(`not a JSON line: ${line}`);
    }
    assert.equal(typeof value, 'object', line);
    return value as Record;
  });
}

test('log_format=json: every line the server prints is one JSON object, with level and ISO time', async (t) => {
  const s = await startServerProcess(t, { props: { log_format: 'json' } });
  assert.equal((await registerPy(s, 'echo', 'echo:handle')).status, 200);
  const ok = await http(s.inference, 'POST', '/predictions/echo', 'hello');
  assert.equal(ok.status, 200);
  const missing = await http(s.inference, 'GET', '/predictions/nosuch');
  assert.equal(missing.status, 404);
  // MMS's describe: one object (TorchServe's dialect answers an array)
  const described = (await http(s.management, 'GET', '/models/echo')).json() as { workers: Array<{ pid: number }> };
  const workerPid = described.workers[0]!.pid;
  // the access record of the last request is written once its response ended
  await s.waitLine(/"url":"\/models\/echo"/);
  assert.equal((await s.stop()).code, 0);

  const all = records(s.lines);
  for (const r of all) {
    assert.ok(['info', 'warn', 'error'].includes(r['level'] as string), JSON.stringify(r));
    assert.match(r['time'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(typeof r['msg'], 'string');
  }
  assert.ok(all.some((r) => r['msg'] === 'Model server started.'));
  assert.ok(
    all.some((r) => r['msg'] === 'Model server stopped.'),
    'the last line is written before the process exits',
  );

  const access = all.find((r) => r['requestId'] === ok.headers['x-request-id']);
  assert.ok(access, `an access record for request ${ok.headers['x-request-id']}`);
  assert.equal(access['level'], 'info');
  assert.equal(access['method'], 'POST');
  assert.equal(access['url'], '/predictions/echo');
  assert.equal(access['status'], 200);
  assert.equal(access['model'], 'echo');
  assert.equal(access['version'], '1.0');
  assert.equal(typeof access['latencyMs'], 'number');
  assert.ok((access['latencyMs'] as number) >= 0);

  const notFound = all.find((r) => r['requestId'] === missing.headers['x-request-id']);
  assert.equal(notFound?.['status'], 404);
  assert.equal(notFound?.['level'], 'warn', 'a 4xx is a warning, a 5xx an error');

  // the worker's own lines and its pool events carry the model, version and worker pid
  const workerLines = all.filter((r) => r['model'] === 'echo' && 'stream' in r);
  assert.ok(workerLines.length > 0, 'the worker printed lines');
  for (const r of workerLines) {
    assert.equal(r['version'], '1.0');
    assert.equal(r['workerPid'], workerPid);
    assert.match(r['worker'] as string, /^W-/);
  }
  const started = all.find((r) => r['event'] === 'started');
  assert.equal(started?.['workerPid'], workerPid);
  assert.equal(started?.['model'], 'echo');
});

test('LOG_FORMAT=json in the environment switches a config without log_format; the default stays the text lines', async (t) => {
  const json = await startServerProcess(t, { env: { LOG_FORMAT: 'json' } });
  assert.equal((await json.stop()).code, 0);
  assert.ok(records(json.lines).some((r) => r['msg'] === 'Model server started.'));

  const text = await startServerProcess(t, { env: { LOG_FORMAT: '' } });
  assert.equal((await http(text.inference, 'GET', '/ping')).status, 200);
  assert.equal((await text.stop()).code, 0);
  assert.ok(text.lines.length > 0);
  for (const line of text.lines) assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z \[INFO \] /);
});

test('log_format other than text or json stops the start with one line naming the key', async (t) => {
  const s = await startServerProcess(t, { noWait: true, props: { log_format: 'xml' } });
  assert.equal((await s.exited).code, 1);
  assert.deepEqual(
    s.lines.filter((l) => l.startsWith('error:')),
    ['error: invalid config value log_format="xml": expected text or json'],
  );
});

/** A ServerLogger writing JSON into an array of parsed records. */
function jsonLogger(): { logger: ServerLogger; out: Record[] } {
  const out: Record[] = [];
  let partial = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const l of lines) out.push(JSON.parse(l) as Record);
      done();
    },
  });
  return { logger: new ServerLogger({ format: 'json', destination }), out };
}

test('json access records also keep access_log.log in its MMS layout under log_location', async (t) => {
  const dir = await tempDir(t);
  const { logger, out } = jsonLogger();
  logger.openAccessLog(dir);
  const record = {
    remote: '127.0.0.1:5000',
    method: 'GET',
    url: '/ping',
    httpVersion: '1.1',
    status: 500,
    latencyMs: 1.23456,
    requestId: 'id-1',
  };
  logger.access!(record);
  await logger.close();
  assert.deepEqual(
    out.map(({ time: _time, pid: _pid, hostname: _hostname, ...rest }) => rest),
    [
      { level: 'info', msg: `Access log: ${join(dir, 'access_log.log')}` },
      {
        level: 'error',
        requestId: 'id-1',
        method: 'GET',
        url: '/ping',
        status: 500,
        latencyMs: 1.235,
        remote: '127.0.0.1:5000',
        msg: 'GET /ping 500',
      },
    ],
  );
  assert.match(await readFile(join(dir, 'access_log.log'), 'utf8'), /^\S+ - \/127\.0\.0\.1:5000 "GET \/ping HTTP\/1\.1" 500 1\n$/);
});

test('text format: nothing records requests without log_location (the HTTP layer reads no clock for them)', () => {
  const logger = new ServerLogger({ format: 'text', log: () => {} });
  assert.equal(logger.access, null);
  assert.notEqual(jsonLogger().logger.access, null, 'json always records requests');
});
