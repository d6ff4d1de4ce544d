/**
 * The hostile-input corpus (fixtures/hostile/, table in its README.md): every archive through inspect, verify,
 * extract, predict and register, every request through the server; each outcome as the table says, one-line
 * errors with exit 1 or 4xx JSON, nothing written outside a target, and the server healthy afterwards.
 *
 * The commands run in this process (main() of both programs, output captured) to keep ~60 cases x 5 commands
 * fast; the error code behind each failure comes from the library call the command makes.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { extractArchive } from '../../src/archive/extract.js';
import { inspectArchive } from '../../src/archive/inspect.js';
import { verifyArchive } from '../../src/archive/verify.js';
import { main as archiverMain } from '../../src/cli/archiver-main.js';
import { main as serverMain } from '../../src/cli/server-main.js';
import { ERROR_CODES, type ErrorCode, MarError } from '../../src/errors.js';
import { openModel } from '../../src/runtime/model.js';
import { FIXTURES, tempDir } from '../helpers/util.js';
import { http, startServer } from '../server/server-helpers.js';

const CORPUS = join(FIXTURES, 'hostile');
const COMMANDS = ['inspect', 'verify', 'extract', 'predict', 'register'] as const;
type Command = (typeof COMMANDS)[number];

interface Row {
  name: string;
  input: string;
  expect: Record<Command, string>;
}

/** The rows of the two tables (## Archives, ## Requests) of fixtures/hostile/README.md. */
async function readTable(): Promise<{ archives: Row[]; requests: Row[] }> {
  const text = await readFile(join(CORPUS, 'README.md'), 'utf8');
  const section = (title: string): Row[] => {
    const body = text.split(`## ${title}\n`)[1]!.split('\n## ')[0]!;
    return body
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| case |'))
      .map((l) => {
        const cells = l
          .slice(2, -2)
          .split(' | ')
          .map((c) => c.trim().replace(/^`(.*)`$/, '$1'));
        assert.equal(cells.length, 7, `a row of 7 cells: ${l}`);
        const [name, input, ...rest] = cells as [string, string, ...string[]];
        return { name, input, expect: Object.fromEntries(COMMANDS.map((c, i) => [c, rest[i]!])) as Record<Command, string> };
      });
  };
  return { archives: section('Archives'), requests: section('Requests') };
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program's main() in this process with its output captured. */
async function cli(main: (argv: readonly string[]) => Promise<number>, argv: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const { write: ow } = process.stdout;
  const { write: ew } = process.stderr;
  const capture =
    (to: string[]) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      to.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    };
  // the programs report through process.exitCode, which the test runner also sets when a test fails
  const exitCode = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = capture(out) as typeof process.stdout.write;
  process.stderr.write = capture(err) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.exitCode = exitCode;
  }
}

/** The command failed the way the table says: exit 1 and one `error:` line (worker log lines aside). */
function assertOneLineError(what: string, r: CliRun): void {
  assert.equal(r.code, 1, `${what}: exit code\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('['));
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^error: \S/);
}

/** The code of the MarError a call ended with, or 'ok'. */
async function outcome(op: () => Promise<unknown>): Promise<string> {
  try {
    await op();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof MarError, `not a MarError: ${(err as Error)?.stack ?? String(err)}`);
    return err.code;
  }
}

/** The model cache's entries (one directory per archive; the dot directories are its own bookkeeping). */
async function cacheEntries(cache: string): Promise<string[]> {
  return (await readdir(cache).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
}

/** Every path below `dir` (relative), to prove what a command left behind. */
async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    out.push(join(e.parentPath ?? e.path, e.name).slice(dir.length + 1));
  return out.sort();
}

test('hostile corpus: the table covers every generated file, with at least 40 cases', async () => {
  const { archives, requests } = await readTable();
  assert.ok(archives.length + requests.length >= 40, `${archives.length + requests.length} cases`);
  const files = (await readdir(CORPUS)).filter((f) => f !== 'README.md').sort();
  assert.deepEqual(archives.map((r) => r.input).sort(), files, 'one row per file of fixtures/hostile, and a file for every row');
});

test('hostile corpus: inspect, verify, extract and predict on every archive', async (t) => {
  const work = await tempDir(t, 'mar-hostile-');
  const cache = join(work, 'cache');
  // the predict command's cache (MAR_CACHE_DIR) is the one the test watches
  process.env['MAR_CACHE_DIR'] = cache;
  const { archives } = await readTable();
  for (const row of archives) {
    const file = join(CORPUS, row.input);
    const box = join(work, 'box');
    await rm(box, { recursive: true, force: true });
    await mkdir(box);
    await t.test(row.input, async () => {
      const entriesBefore = await cacheEntries(cache);
      // inspect
      assert.equal(await outcome(() => inspectArchive(file)), row.expect.inspect, 'inspect');
      const ins = await cli(archiverMain, ['inspect', file]);
      if (row.expect.inspect === 'ok') assert.equal(ins.code, 0, ins.stderr);
      else assertOneLineError('inspect', ins);
      // verify: problems reported, or a thrown error
      const v = row.expect.verify;
      if (v.startsWith('[') || v === 'ok') {
        const result = await verifyArchive(file);
        const codes = new Set(result.problems.map((p) => p.code));
        const want = v === 'ok' ? [] : v.slice(1, -1).split(', ');
        for (const c of want) assert.ok(codes.has(c as never), `verify reports ${c}; got ${[...codes].join(', ')}`);
        assert.equal(result.ok, v === 'ok', `verify ok: ${[...codes].join(', ')}`);
      } else assert.equal(await outcome(() => verifyArchive(file)), v, 'verify');
      const ver = await cli(archiverMain, ['verify', file]);
      if (v === 'ok') assert.equal(ver.code, 0, ver.stdout + ver.stderr);
      else assertOneLineError('verify', ver);
      // extract: the target or nothing, nothing beside it
      assert.equal(await outcome(() => extractArchive(file, join(box, 'api'))), row.expect.extract, 'extract');
      const ext = await cli(archiverMain, ['extract', file, '-o', join(box, 'cli')]);
      if (row.expect.extract === 'ok') {
        assert.equal(ext.code, 0, ext.stderr);
        assert.deepEqual(await readdir(box), ['api', 'cli']);
      } else {
        assertOneLineError('extract', ext);
        assert.deepEqual(await readdir(box), [], 'a refused extraction leaves nothing, not even a temp dir');
      }
      // predict: the loader's verdict, then the command (which runs the model when it loads)
      assert.equal(
        await outcome(async () => (await openModel(file, { cacheDir: cache })).release()),
        row.expect.predict,
        'predict (openModel)',
      );
      // the command itself where it must fail; where it loads, running a worker shows nothing about the archive
      // beyond the control case
      if (row.expect.predict !== 'ok' || row.input === 'control-ok.mar') {
        const pre = await cli(serverMain, ['predict', file, '--data', 'x']);
        if (row.expect.predict === 'ok') assert.equal(pre.code, 0, pre.stderr);
        else assertOneLineError('predict', pre);
      }
      // the cache keeps what loaded (it is persistent); a refused archive adds no entry and leaves no half-extraction
      if (row.expect.predict !== 'ok') assert.deepEqual(await cacheEntries(cache), entriesBefore, 'a refused archive adds no cache entry');
      assert.deepEqual(await readdir(join(cache, '.tmp')).catch(() => []), [], 'no half-extracted entry is left');
    });
    await rm(box, { recursive: true, force: true });
  }
  // nothing escaped: no evil.txt anywhere near, nothing in /tmp
  assert.ok(!(await listTree(work)).some((p) => p.includes('evil')), 'no escaped file in the work dir');
  assert.ok(!existsSync('/tmp/hostile-evil.txt'));
});

test('hostile corpus: register every archive and send every request; the server stays healthy', async (t) => {
  process.env['MAR_CACHE_DIR'] = join(await tempDir(t, 'mar-hostile-cache-'), 'cache');
  const s = await startServer(t);
  const store = s.store;
  await cp(CORPUS, store, { recursive: true });
  const outside = await tempDir(t, 'mar-outside-');
  await cp(join(CORPUS, 'control-ok.mar'), join(outside, 'escape.mar'));
  await symlink(join(outside, 'escape.mar'), join(store, 'escape-link.mar'));
  assert.equal((await http(s.management, 'POST', '/models?url=control-ok.mar&model_name=control&initial_workers=1')).status, 200);

  const { archives, requests } = await readTable();
  const check = async (row: Row, send: () => Promise<{ status: number; json: () => any }>): Promise<void> => {
    const [status, code] = row.expect.register.split(' ') as [string, ErrorCode | undefined];
    const r = await send();
    const body = r.json();
    assert.equal(r.status, Number(status), `${row.input}: ${JSON.stringify(body)}`);
    if (code !== undefined) {
      assert.deepEqual([body.code, body.type], [ERROR_CODES[code].httpStatus, ERROR_CODES[code].type], `${row.input}: ${body.message}`);
      assert.equal(typeof body.message, 'string');
      assert.ok(!body.message.includes('\n'), 'a one-line message');
    } else {
      // registered: take it out again, so the next archive (same model name) can register
      const name = /Model "(.+)" registered/.exec(body.status)![1]!;
      assert.equal((await http(s.management, 'DELETE', `/models/${name}`)).status, 200);
    }
  };
  for (const row of archives) {
    await check(row, () => http(s.management, 'POST', `/models?url=${encodeURIComponent(row.input)}`));
  }
  for (const row of requests) {
    const m = /^(POST|PUT) (\S+)(?: (\{.*\}))?$/.exec(row.input);
    assert.ok(m, `a request: ${row.input}`);
    const [, method, path, json] = m;
    await check(row, () => http(s.management, method!, path!, json, json ? { 'content-type': 'application/json' } : {}));
  }

  assert.deepEqual((await http(s.inference, 'GET', '/ping')).json(), { status: 'Healthy' });
  assert.equal((await http(s.inference, 'POST', '/predictions/control', 'x')).text, 'OK');
  const models = (await http(s.management, 'GET', '/models')).json().models.map((m: { modelName: string }) => m.modelName);
  assert.deepEqual(models, ['control'], 'only the control model is registered');
  assert.ok(!(await listTree(s.dir)).some((p) => p.includes('evil')), 'no escaped file below the server dir');
  assert.ok(!existsSync('/tmp/hostile-evil.txt'));
});
