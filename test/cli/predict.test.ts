import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { FIXTURES, SERVER_BIN, server, tempDir } from '../helpers/util.js';

const HANDLERS = join(FIXTURES, 'handlers', 'python');
const onDir = (handler: string, ...args: string[]) => ['predict', HANDLERS, '--model-name', 'm', '--handler', handler, ...args];

/** stdout of `model-server <args>` as bytes. */
function rawStdout(args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SERVER_BIN, ...args], { encoding: 'buffer' }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** A .mar made by our archiver: a handler that echoes its input and the batch length, batch size 2 from model-config.yaml. */
async function makeArchive(t: TestContext): Promise<string> {
  const src = await tempDir(t);
  const out = await tempDir(t);
  await writeFile(
    join(src, 'my_handler.py'),
    [
      'def handle(data, context):',
      '    if data is None:',
      '        return None',
      '    return [{"batch": len(data), "body": r.get("body") if not isinstance(r.get("body"), (bytes, bytearray)) else "<bytes>"} for r in data]',
      '',
    ].join('\n'),
  );
  await writeFile(join(src, 'model-config.yaml'), 'batchSize: 2\n');
  const result = await createArchive({
    modelName: 'echoer',
    handler: 'my_handler:handle',
    modelPath: src,
    configFile: join(src, 'model-config.yaml'),
    exportPath: out,
  });
  return result.path;
}

describe('model-server predict', () => {
  it('runs a handler from a directory and prints the raw body', async () => {
    const r = await server(onDir('noop', '--data', 'hello', '--quiet'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'OK');
    assert.equal(r.stderr, '', '--quiet keeps the worker log off stderr');
  });

  it("forwards the worker's log lines to stderr without --quiet", async () => {
    const r = await server(onDir('noop', '--data', 'hello'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\[m W-\d+-[0-9a-f]+\] /);
  });

  it('sends several inputs as one batch and prints one body per line', async () => {
    const r = await server(onDir('batch_size', '--data', '1', '--data', '2', '--data', '3', '--quiet'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.endsWith('}\n'), 'each body is followed by a newline');
    const bodies = r.stdout.split(/\n(?=\{)/);
    assert.equal(bodies.length, 3);
    for (const b of bodies) assert.deepEqual(JSON.parse(b), { batch_length: 3, batch_size: 3 });
  });

  it('--batch-size caps the batch; --json reports status, headers, content type and body', async () => {
    const r = await server(onDir('batch_size', '--data', '1', '--data', '2', '--data', '3', '--batch-size', '2', '--json', '-q'));
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Array<{ status: number; contentType: string | null; body: string }>;
    assert.deepEqual(
      out.map((o) => JSON.parse(o.body).batch_length),
      [2, 2, 1],
    );
    assert.equal(out[0]!.status, 200);
  });

  it('content types: by file extension, --data JSON or text, --content-type overrides; headers reach the handler', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'a.json'), '{"x": 1}');
    await writeFile(join(dir, 'b.csv'), '1,2\n');
    await writeFile(join(dir, 'c.bin'), Buffer.from([0xff, 0x00, 0x01]));
    const r = await server(
      onDir(
        'echo',
        '--input',
        join(dir, 'a.json'),
        '--input',
        join(dir, 'b.csv'),
        '--input',
        join(dir, 'c.bin'),
        '--data',
        'plain words',
        '--data',
        '[1, 2]',
        '-H',
        'X-Trace: abc',
        '--json',
        '-q',
      ),
    );
    assert.equal(r.code, 0, r.stderr);
    const out = (JSON.parse(r.stdout) as Array<{ body: string }>).map((o) => JSON.parse(o.body));
    const body = (i: number) => out[i].params.body;
    assert.deepEqual([body(0).type, body(0).value, body(0).content_type], ['dict', { x: 1 }, 'application/json']);
    assert.deepEqual([body(1).type, body(1).content_type], ['str', 'text/plain']);
    assert.deepEqual([body(2).type, body(2).content_type], ['bytearray', 'application/octet-stream']);
    assert.deepEqual([body(3).type, body(3).value], ['str', 'plain words']);
    assert.deepEqual([body(4).type, body(4).value], ['list', [1, 2]]);
    assert.equal(out[0].headers['X-Trace'], 'abc');
    assert.equal(out[0].headers['Content-Type'], 'application/json');

    const stdin = await server(onDir('echo', '--input', '-', '--content-type', 'application/json', '--json', '-q'), {
      input: '{"from": "stdin"}',
    });
    assert.deepEqual(JSON.parse((JSON.parse(stdin.stdout) as Array<{ body: string }>)[0]!.body).params.body.value, { from: 'stdin' });

    const forced = await server(onDir('echo', '--data', '{"x": 1}', '--content-type', 'text/plain', '--json', '-q'));
    const echoed = JSON.parse((JSON.parse(forced.stdout) as Array<{ body: string }>)[0]!.body);
    assert.equal(echoed.params.body.type, 'str');
  });

  it('an answer with a status >= 400 set by the handler is printed but fails the run (exit 1, status on stderr)', async () => {
    // Input 2 is answered 404 with an empty phrase by the fixture (the reference handle_status example).
    const r = await server(onDir('status_headers', '--data', '{"status": 400, "phrase": "Bad Features"}', '--data', 'x', '-q'));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, 'custom\n{\n  "a": 1\n}\n', 'both answers are still printed');
    assert.match(r.stderr, /^error: 400 Bad Features \(input 1: .*\)\nerror: 404 \(status set by the handler\) \(input 2: .*\)\n$/);
    const empty = await server(onDir('status_headers', '--data', '{"status": 422}', '-q'));
    assert.equal(empty.code, 1);
    assert.equal(empty.stderr, 'error: 422 (status set by the handler)\n');
  });

  it('--json shows per-request status and headers; a non-UTF-8 body is base64; raw mode writes the exact bytes', async (t) => {
    const json = await server(onDir('status_headers', '--data', 'x', '--json', '-q'));
    assert.equal(json.code, 0, json.stderr);
    const [first] = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(first, {
      status: 201,
      reasonPhrase: 'Created Thing',
      headers: { 'content-type': 'text/plain', 'X-Foo': 'bar' },
      contentType: 'text/plain',
      body: '\x00\x01raw-bytes',
    });

    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'binary.py'),
      'def handle(data, context):\n    return None if data is None else [bytes([0xff, 0xfe, 0x00, 0x41])] * len(data)\n',
    );
    const args = ['predict', dir, '--model-name', 'b', '--handler', 'binary', '--data', 'x', '-q'];
    const b64 = await server([...args, '--json']);
    assert.deepEqual(JSON.parse(b64.stdout)[0].body, Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString('base64'));
    assert.equal(JSON.parse(b64.stdout)[0].encoding, 'base64');
    const raw = await rawStdout(args);
    assert.deepEqual(raw, Buffer.from([0xff, 0xfe, 0x00, 0x41]), 'raw bytes, no newline added for a single input');
  });

  it('runs an archive made by createArchive, with the batch size from its model config', async (t) => {
    const mar = await makeArchive(t);
    const r = await server(['predict', mar, '--data', '{"a": 1}', '--data', 'two', '--data', 'three', '--json', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const bodies = (JSON.parse(r.stdout) as Array<{ body: string }>).map((o) => JSON.parse(o.body));
    assert.deepEqual(bodies, [
      { batch: 2, body: { a: 1 } },
      { batch: 2, body: 'two' },
      { batch: 1, body: 'three' },
    ]);
  });

  it('runs a Node handler with --runtime node, inputs as one batch', async () => {
    const nodeHandlers = join(FIXTURES, 'handlers', 'node');
    const r = await server([
      'predict',
      nodeHandlers,
      '--model-name',
      'n',
      '--handler',
      'batch_size',
      '--runtime',
      'node',
      '--data',
      'a',
      '--data',
      'b',
      '--json',
      '-q',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const bodies = (JSON.parse(r.stdout) as Array<{ body: string }>).map((o) => JSON.parse(o.body));
    assert.equal(bodies.length, 2);
    for (const b of bodies) assert.deepEqual(b, { batch_length: 2, batch_size: 2 });
  });

  it('a handler error prints "error: <status> <message>" and exits 1', async () => {
    const r = await server(onDir('errors:prediction_exception', '--data', 'x', '-q'));
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'error: 599 Some Prediction Error\n');
  });

  it('a load failure is one error line and exit 1', async () => {
    const r = await server(onDir('load_fail', '--data', 'x', '-q'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: Failed to load model m: .+\n$/);
  });

  it('a missing model or input file is one error line and exit 1; no input at all is a usage error', async (t) => {
    const dir = await tempDir(t);
    const noModel = await server(['predict', join(dir, 'nope.mar'), '--data', 'x']);
    assert.equal(noModel.code, 1);
    assert.equal(noModel.stderr.trim().split('\n').length, 1);
    assert.match(noModel.stderr, /^error: .*nope\.mar/);

    const noInput = await server(onDir('noop', '--input', join(dir, 'missing.json')));
    assert.equal(noInput.code, 1);
    assert.match(noInput.stderr, /^error: cannot read input file .*missing\.json: no such file or directory\n$/);

    const nothing = await server(onDir('noop'));
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /nothing to predict/);
  });

  it('a worker crash answers "Worker died." and exits 1 instead of hanging', async (t) => {
    const dir = await tempDir(t);
    await copyFile(join(HANDLERS, 'crash.py'), join(dir, 'crash.py'));
    const r = await server(['predict', dir, '--model-name', 'm', '--handler', 'crash', '--data', 'x', '-q']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: 500 Worker died.\n');
  });

  it('a replacement worker that cannot load ends the run: the queued inputs report why instead of waiting for ever', async (t) => {
    const dir = await tempDir(t);
    // Crashes on its first batch, leaving a mark that makes every later LOAD fail.
    await writeFile(
      join(dir, 'once.py'),
      [
        'import os',
        'MARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crashed.mark")',
        'def handle(data, context):',
        '    if data is None:',
        '        if os.path.exists(MARK):',
        '            raise RuntimeError("cannot load after a crash")',
        '        return None',
        '    open(MARK, "w").close()',
        '    os._exit(3)',
        '',
      ].join('\n'),
    );
    const r = await server(
      ['predict', dir, '--model-name', 'm', '--handler', 'once', '--data', 'a', '--data', 'b', '--batch-size', '1', '-q'],
      {
        timeoutMs: 20_000,
      },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr,
      'error: 500 Worker died. (input 1: --data)\nerror: 500 Failed to load model m: RuntimeError: cannot load after a crash (input 2: --data)\n',
    );
  });

  it('Ctrl-C (SIGINT) ends the run with status 130 and takes the busy worker down with it', async (t) => {
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'stuck.py'),
      [
        'import os, time',
        'def handle(data, context):',
        '    if data is None:',
        '        return None',
        '    print("handler pid %d" % os.getpid(), flush=True)',
        '    while True:',
        '        time.sleep(3600)',
        '',
      ].join('\n'),
    );
    const child = spawn(process.execPath, [SERVER_BIN, 'predict', dir, '--model-name', 'm', '--handler', 'stuck', '--data', 'x'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = once(child, 'exit');
    let stderr = '';
    const workerPid = await new Promise<number>((resolve, reject) => {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr += chunk;
        const m = /handler pid (\d+)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error(`predict exited first:\n${stderr}`)));
    });
    // A zombie (reparented, not yet reaped) counts as gone.
    const running = (pid: number): boolean => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    t.after(() => void (running(workerPid) && process.kill(workerPid, 'SIGKILL')));
    child.kill('SIGINT');
    const [code] = await exited;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /error: interrupted by SIGINT\n$/);
    // SIGKILL was sent before predict exited; give the kernel a moment to carry it out.
    for (let i = 0; i < 100 && running(workerPid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(running(workerPid), false, 'the worker did not outlive predict');
  });
});
