import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, server, tempDir } from '../helpers/util.js';
import { http, register, startServer, startServerProcess } from './server-helpers.js';

/**
 * A handler that prints each batch (so a test waits for "the batch is in the worker", not for time); body "hang"
 * never answers; with a gate file, a batch is answered only once that file exists (the test opens the gate).
 */
function announce(gate?: string): string {
  return `
import os, time

GATE = ${JSON.stringify(gate ?? '')}

def handle(data, context):
    if data is None:
        return None
    bodies = [bytes(r.get("body") or b"").decode() for r in data]
    print("BATCH " + ",".join(bodies), flush=True)
    if "hang" in bodies:
        while True:
            time.sleep(3600)
    while GATE and not os.path.exists(GATE):
        time.sleep(0.01)
    return bodies
`;
}

/** A model directory with a MAR-INF manifest, as model-archiver would produce it. */
async function writeModelDir(dir: string, name: string, handlerSource: string, module = 'announce'): Promise<void> {
  await mkdir(join(dir, 'MAR-INF'), { recursive: true });
  await writeFile(join(dir, `${module}.py`), handlerSource);
  await writeFile(
    join(dir, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: name, handler: `${module}:handle` }, archiverVersion: '0.1.0' }),
  );
}

/** True while the process exists and is not a zombie waiting to be reaped. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('SIGTERM with requests in flight: none lost, workers stopped, extracted archives released, exit 0', async (t) => {
  const s = await startServerProcess(t);
  // a .mar (zip) in the store: it is extracted into the cache, which keeps it after shutdown, no longer in use
  const src = join(s.dir, 'src');
  const gate = join(s.dir, 'gate');
  await writeModelDir(src, 'slow', announce(gate));
  execFileSync('python3', [
    '-c',
    `import shutil; shutil.make_archive(${JSON.stringify(join(s.store, 'slow'))}, 'zip', ${JSON.stringify(src)})`,
  ]);
  execFileSync('mv', [join(s.store, 'slow.zip'), join(s.store, 'slow.mar')]);
  // one batch of three: when the handler announces it, all three requests are in the server
  const r = await register(s, { url: 'slow.mar', initial_workers: 1, batch_size: 3, max_batch_delay: 10_000 });
  assert.equal(r.status, 200, r.text);
  const pid = (await http(s.management, 'GET', '/models/slow')).json().workers[0].pid as number;
  assert.ok((await readdir(join(s.dir, 'cache'))).length > 0);

  const requests = ['a', 'b', 'c'].map((b) => http(s.inference, 'POST', '/predictions/slow', b));
  await s.waitLine(/BATCH [abc],[abc],[abc]/);
  s.proc.kill('SIGTERM');
  // the batch is held in the handler until the server is shutting down: it is in flight for sure
  await s.waitLine(/SIGTERM received: shutting down/);
  await writeFile(gate, '');
  const results = await Promise.all(requests);
  assert.deepEqual(results.map((x) => [x.status, x.text]).sort(), [
    [200, 'a'],
    [200, 'b'],
    [200, 'c'],
  ]);
  const { code } = await s.exited;
  assert.equal(code, 0);
  assert.equal(isAlive(pid), false, 'worker stopped');
  const left = (await readdir(join(s.dir, 'cache'))).filter((n) => !n.startsWith('.'));
  assert.equal(left.length, 1, 'the extraction stays in the cache for the next start');
  assert.deepEqual(await readdir(join(s.dir, 'cache', left[0]!, 'users')), [], 'released: the server no longer uses it');
  await assert.rejects(http(s.inference, 'GET', '/ping'), /ECONNREFUSED/);
});

test('a second signal exits at once with a non-zero status', async (t) => {
  const s = await startServerProcess(t);
  await writeModelDir(join(s.store, 'stuck'), 'stuck', announce());
  assert.equal((await register(s, { url: 'stuck', initial_workers: 1 })).status, 200);
  const workerPid = (await http(s.management, 'GET', '/models/stuck')).json().workers[0].pid as number;
  const pending = http(s.inference, 'POST', '/predictions/stuck', 'hang').catch((err: Error) => err);
  await s.waitLine(/BATCH hang/);
  s.proc.kill('SIGTERM');
  await s.waitLine(/SIGTERM received: shutting down/);
  s.proc.kill('SIGINT');
  const { code } = await s.exited;
  assert.notEqual(code, 0);
  await pending;
  // SIGKILL is delivered asynchronously: the worker may take a moment to die after the server is gone.
  const deadline = Date.now() + 5000;
  while (isAlive(workerPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(isAlive(workerPid), false, 'no orphaned worker');
});

test('startup models: --models name=url and load_models=ALL, default workers, /invocations with the only startup model', async (t) => {
  const dir = await tempDir(t, 'mar-startup-');
  const store = join(dir, 'store');
  await writeModelDir(join(store, 'm1'), 'm1', announce());
  await cp(join(FIXTURES, 'handlers', 'python'), join(store, 'py'), { recursive: true });
  const s3 = await startServerProcess(t, {
    props: { default_workers_per_model: 1, model_store: store },
    args: ['--models', 'first=m1', 'missing.mar'],
  });
  await s3.waitLine(/Failed to load model missing from missing\.mar: Model not found in model store: missing\.mar/);
  const d = (await http(s3.management, 'GET', '/models/first')).json();
  assert.equal(d.loadedAtStartup, true);
  assert.equal(d.minWorkers, 1);
  assert.equal(d.workers[0].status, 'READY');
  const inv = await http(s3.inference, 'POST', '/invocations', 'x');
  assert.deepEqual([inv.status, inv.text], [200, 'x']);

  const s4 = await startServerProcess(t, { props: { default_workers_per_model: 1, model_store: store, load_models: 'ALL' } });
  const names = (await http(s4.management, 'GET', '/models')).json().models.map((m: { modelName: string }) => m.modelName);
  // py has no manifest and no handler: logged and skipped
  assert.deepEqual(names, ['m1']);
  await s4.waitLine(/Failed to load model py/);
});

test('config: environment overrides, bad values fail before listening', async (t) => {
  const s = await startServerProcess(t, { env: { MMS_MANAGEMENT_ADDRESS: 'http://127.0.0.1:0', MMS_JOB_QUEUE_SIZE: '7' } });
  assert.equal((await http(s.inference, 'GET', '/ping')).status, 200);
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.properties'), 'max_request_size=lots\n');
  const bad = await server(['start', '--config', join(dir, 'config.properties')]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /^error: invalid config value max_request_size="lots": expected an integer >= 1/);
  assert.doesNotMatch(bad.stdout, /bind to/);
  const env = await server(['start', '--config', join(dir, 'nosuch.properties')]);
  assert.equal(env.code, 1);
  assert.match(env.stderr, /cannot read config file/);
  const https = await server(['start'], { cwd: dir, env: { MMS_INFERENCE_ADDRESS: 'https://127.0.0.1:0', MMS_CONFIG_FILE: '' } });
  assert.equal(https.code, 1);
  assert.match(https.stderr, /https is not supported/);
  // --start reports the config error itself (it said only "the server exited with code 1")
  const bg = await server(['--start', '--config', join(dir, 'config.properties'), '--pid-file', join(dir, 'bg.pid')]);
  assert.equal(bg.code, 1);
  assert.equal(bg.stderr.trim().split('\n').length, 1, bg.stderr);
  assert.match(bg.stderr, /^error: invalid config value max_request_size="lots"/);
});

test('unix socket listener; equal addresses give one listener serving both APIs', async (t) => {
  const sockDir = await tempDir(t, 'mar-sock-');
  const sock = join(sockDir, 'mms.sock');
  const s = await startServer(t, { props: { inference_address: `unix:${sock}`, management_address: `unix:${sock}` } });
  assert.equal(s.inference, `unix:${sock}`);
  const get = (path: string, method = 'GET'): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ socketPath: sock, path, method }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end();
    });
  assert.deepEqual(await get('/ping'), { status: 200, text: '{\n  "status": "Healthy"\n}\n' });
  assert.deepEqual(await get('/models'), { status: 200, text: '{\n  "models": []\n}\n' });
  const doc = JSON.parse((await get('/', 'OPTIONS')).text);
  assert.ok('/ping' in doc.paths && '/models' in doc.paths);
});

test('--start runs the server in the background with a pid file; --stop stops it', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await cp(join(FIXTURES, 'handlers', 'python'), join(store, 'py'), { recursive: true });
  await writeFile(join(dir, 'config.properties'), 'inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\n');
  const started = await server(['--start', '--model-store', store, '--config', join(dir, 'config.properties')], { cwd: dir });
  assert.equal(started.code, 0, started.stderr);
  const daemonPid = Number(/pid (\d+)/.exec(started.stdout)?.[1]);
  t.after(() => {
    if (isAlive(daemonPid)) process.kill(daemonPid, 'SIGTERM');
  });
  const inference = /inference API: (\S+)/.exec(started.stdout)?.[1];
  const management = /management API: (\S+)/.exec(started.stdout)?.[1];
  assert.ok(inference && management, started.stdout);
  const pidFile = join(store, '.model_server.pid');
  assert.ok(existsSync(pidFile));
  assert.equal((await http(inference, 'GET', '/ping')).status, 200);
  const r = await http(management, 'POST', '/models?url=py&model_name=noop&handler=noop:handle&initial_workers=1');
  assert.equal(r.status, 200);
  assert.equal((await http(inference, 'POST', '/predictions/noop', 'x')).text, 'OK');

  const twice = await server(['--start', '--model-store', store, '--config', join(dir, 'config.properties')], { cwd: dir });
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /already running/);

  // The printed stop command works from anywhere (the default pid file depends on the cwd and --model-store).
  const hint = /stop with: model-server (--stop --pid-file \S+)/.exec(started.stdout)?.[1];
  assert.ok(hint, started.stdout);
  const stopped = await server(hint.split(' '), { cwd: tmpdir() });
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /Model server stopped\./);
  assert.equal(existsSync(pidFile), false);
  await assert.rejects(http(inference, 'GET', '/ping'), /ECONNREFUSED/);
  const again = await server(['--stop', '--model-store', store], { cwd: dir });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /not currently running/);
});

test('a pipelined request dropped behind an error response does not hold up shutdown', async (t) => {
  const s = await startServer(t, { props: { shutdown_timeout: 120 } });
  assert.equal((await register(s, { url: 'py', model_name: 'noop', handler: 'noop:handle', initial_workers: 1 })).status, 200);
  // the 404 closes the connection (as MMS), so node never answers or closes the third request's response
  const url = new URL(s.inference);
  const raw = await new Promise<string>((resolve, reject) => {
    const sock = connect(Number(url.port), url.hostname, () =>
      sock.write(
        'GET /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /nosuch HTTP/1.1\r\nHost: x\r\n\r\nPOST /predictions/noop HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx',
      ),
    );
    let text = '';
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('close', () => resolve(text));
    sock.on('error', reject);
  });
  assert.equal(raw.match(/^HTTP\/1\.1 /gm)?.length, 2, raw);
  assert.match(raw, /HTTP\/1\.1 404 Not Found\r\n/);
  const start = performance.now();
  await s.stop();
  // it waited for the lost request until shutdown_timeout (120 s here)
  assert.ok(performance.now() - start < 20_000, `shutdown took ${Math.round(performance.now() - start)} ms`);
});

test('a client that disconnects in the middle of its body leaves no stack trace in the log', async (t) => {
  const s = await startServerProcess(t);
  const url = new URL(s.inference);
  for (const head of ['Content-Length: 1000', 'Transfer-Encoding: chunked']) {
    await new Promise<void>((resolve, reject) => {
      const sock = connect(Number(url.port), url.hostname, () => {
        sock.write(`POST /predictions/x HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n${head.startsWith('Content') ? 'abc' : '3\r\nabc\r\n'}`, () =>
          sock.destroy(),
        );
      });
      sock.on('close', () => resolve());
      sock.on('error', reject);
    });
  }
  // the server is still fine, then stops cleanly
  assert.equal((await http(s.inference, 'GET', '/ping')).status, 200);
  assert.equal((await s.stop()).code, 0);
  assert.deepEqual(
    s.lines.filter((l) => /unexpected error|    at /.test(l)),
    [],
  );
});

test('--stop never signals another program whose pid is in a stale pid file; --start is not refused by it', async (t) => {
  const dir = await tempDir(t);
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => other.kill('SIGKILL'));
  await once(other, 'spawn');
  const pidFile = join(dir, 'stale.pid');
  await writeFile(pidFile, `${other.pid}\n`);
  const stop = await server(['--stop', '--pid-file', pidFile]);
  assert.equal(stop.code, 1);
  assert.match(stop.stderr, /not currently running/);
  assert.equal(other.exitCode, null);
  assert.equal(other.signalCode, null);
  assert.ok(isAlive(other.pid!), 'the other program was signalled');
  assert.equal(existsSync(pidFile), false, 'the stale pid file is removed');
  await writeFile(pidFile, `${other.pid}\n`);
  await writeFile(join(dir, 'config.properties'), 'inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\n');
  const started = await server(['--start', '--config', join(dir, 'config.properties'), '--pid-file', pidFile], { cwd: dir });
  assert.equal(started.code, 0, started.stderr);
  const daemonPid = Number(/pid (\d+)/.exec(started.stdout)?.[1]);
  t.after(() => {
    if (isAlive(daemonPid)) process.kill(daemonPid, 'SIGTERM');
  });
  assert.equal(readFileSync(pidFile, 'utf8').trim(), String(daemonPid));
  assert.equal((await server(['--stop', '--pid-file', pidFile])).code, 0);
  assert.ok(isAlive(other.pid!));
});
