import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { watch } from 'node:fs';
import { mkdir, readdir, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HANDLER_PY, writeFiles } from '../archive/fixture-model.js';
import { ARCHIVER_BIN, archiver, run, tempDir } from '../helpers/util.js';
import { checkZipEverywhere } from '../helpers/zip-checkers.js';

async function model(t: Parameters<typeof tempDir>[0]): Promise<{ tmp: string; dir: string; out: string }> {
  const tmp = await tempDir(t);
  const dir = join(tmp, 'model');
  await writeFiles(dir, { 'handler.py': HANDLER_PY, 'weights.bin': Buffer.alloc(5000, 7), 'labels.txt': 'a\nb\n' });
  return { tmp, dir, out: join(tmp, 'out') };
}

function oneErrorLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${stderr}`);
  assert.match(lines[0]!, /^error: /);
  return lines[0]!;
}

async function unzipText(file: string, name: string): Promise<string> {
  const r = await run('unzip', ['-p', file, name]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('model-archiver create: flag styles', () => {
  it('MMS style: create flags without a subcommand, one summary line', async (t) => {
    const { dir, out } = await model(t);
    const r = await archiver(['--model-name', 'squeeze', '--model-path', dir, '--handler', 'handler:handle', '--export-path', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^created .*squeeze\.mar \(5 entries, [\d.]+ [kKM]?B, \d+ stored \/ \d+ deflated\) in [\d.]+m?s\n$/);
    assert.equal(r.stderr, '');
    const { python } = await checkZipEverywhere(join(out, 'squeeze.mar'));
    assert.deepEqual(python.names, ['handler.py', 'labels.txt', 'weights.bin', 'MAR-INF/FILES.sha256', 'MAR-INF/MANIFEST.json']);
  });

  it('`create` subcommand with --json prints one JSON object on stdout', async (t) => {
    const { dir, out } = await model(t);
    const r = await archiver([
      'create',
      '--model-name',
      'j',
      '--model-path',
      dir,
      '--handler',
      'handler',
      '--export-path',
      out,
      '--json',
      '--archive-format',
      'zip-store',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(j['path'], join(out, 'j.mar'));
    assert.equal(j['format'], 'zip-store');
    assert.equal(j['entryCount'], 5);
    assert.deepEqual(j['methods'], { stored: 5, deflated: 0 });
    assert.match(String(j['sha256']), /^[0-9a-f]{64}$/);
    assert.equal(typeof j['bytes'], 'number');
    assert.equal((j['manifest'] as { model: { modelName: string } }).model.modelName, 'j');
    assert.equal(r.stdout.trim().split('\n').length, 1);
  });

  it('TorchServe style: file flags, -v, -r, -c, repeated --extra-files, a handler path with :fn, --quiet', async (t) => {
    const tmp = await tempDir(t);
    await writeFiles(tmp, {
      'h/my_handler.py': HANDLER_PY,
      'model.pt': 'weights',
      'model_def.py': 'class Net: pass\n',
      'requirements.txt': 'numpy\n',
      'cfg.yaml': 'batchSize: 2\n',
      'vocab.txt': 'v',
      'assets/sub/a.json': '{}',
    });
    const r = await archiver(
      [
        '--model-name',
        'bert',
        '-v',
        '1.2',
        '--handler',
        'h/my_handler.py:infer',
        '--serialized-file',
        'model.pt',
        '--model-file',
        'model_def.py',
        '-r',
        'requirements.txt',
        '-c',
        'cfg.yaml',
        '--extra-files',
        'vocab.txt, assets',
        '--extra-files',
        'model_def.py',
        '--description',
        'a BERT',
        '--export-path',
        'store',
        '-q',
      ],
      { cwd: tmp },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, '', '--quiet prints nothing');
    const mar = join(tmp, 'store', 'bert.mar');
    const { python } = await checkZipEverywhere(mar);
    assert.deepEqual(python.names!.slice(0, -2), [
      'cfg.yaml',
      'model.pt',
      'model_def.py',
      'my_handler.py',
      'requirements.txt',
      'sub/a.json',
      'vocab.txt',
    ]);
    const manifest = JSON.parse(await unzipText(mar, 'MAR-INF/MANIFEST.json'));
    assert.deepEqual(manifest.model, {
      modelName: 'bert',
      serializedFile: 'model.pt',
      handler: 'my_handler.py:infer',
      modelFile: 'model_def.py',
      modelVersion: '1.2',
      description: 'a BERT',
      requirementsFile: 'requirements.txt',
      configFile: 'cfg.yaml',
    });
    assert.ok(manifest.archiverVersion && manifest.createdOn && manifest.specificationVersion === '1.0');
  });

  it('every format from the CLI; --exclude is repeatable; --runtime node; export path is created', async (t) => {
    const { tmp, dir, out } = await model(t);
    await writeFile(join(dir, 'handler.js'), 'exports.handle = (x) => x;\n');
    await writeFiles(dir, { 'logs/a.log': 'x', 'tmp.bak': 'x' });
    for (const [format, name] of [
      ['default', 'a.mar'],
      ['zip-store', 'b.mar'],
      ['tgz', 'c.tar.gz'],
      ['no-archive', 'd'],
    ] as const) {
      const r = await archiver([
        '--model-name',
        name.replace(/\..*/, ''),
        '--model-path',
        dir,
        '--handler',
        'handler',
        '--runtime',
        'node',
        '--archive-format',
        format,
        '--export-path',
        join(out, 'deep'),
        '--exclude',
        'logs/',
        '--exclude',
        '*.bak',
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { path: string; entryCount: number; manifest: { runtime: string } };
      assert.equal(j.path, join(out, 'deep', name));
      assert.equal(j.entryCount, 6, format);
      assert.equal(j.manifest.runtime, 'node');
    }
    assert.deepEqual((await readdir(join(out, 'deep'))).sort(), ['a.mar', 'b.mar', 'c.tar.gz', 'd']);
    const tar = await run('tar', ['-tzf', join(out, 'deep', 'c.tar.gz')], { cwd: tmp });
    assert.deepEqual(tar.stdout.trim().split('\n'), [
      'c/handler.js',
      'c/handler.py',
      'c/labels.txt',
      'c/weights.bin',
      'c/MAR-INF/FILES.sha256',
      'c/MAR-INF/MANIFEST.json',
    ]);
  });

  it('SOURCE_DATE_EPOCH makes two CLI runs byte-identical', async (t) => {
    const { dir, out } = await model(t);
    const args = (o: string): string[] => [
      '--model-name',
      'r',
      '--model-path',
      dir,
      '--handler',
      'handler:handle',
      '--export-path',
      o,
      '-q',
    ];
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    assert.equal((await archiver(args(join(out, '1')), { env })).code, 0);
    assert.equal((await archiver(args(join(out, '2')), { env })).code, 0);
    assert.ok((await readFile(join(out, '1', 'r.mar'))).equals(await readFile(join(out, '2', 'r.mar'))));
    const bad = await archiver(args(join(out, '3')), { env: { SOURCE_DATE_EPOCH: 'yesterday' } });
    assert.equal(bad.code, 1);
    assert.match(oneErrorLine(bad.stderr), /SOURCE_DATE_EPOCH/);
  });

  it('warns (and still archives) when the handler module has no entry point the server can resolve', async (t) => {
    const { dir, out } = await model(t);
    const ok = await archiver(['--model-name', 'good', '--model-path', dir, '--handler', 'handler:handle', '--export-path', out]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stderr, /warning/);
    await writeFile(join(dir, 'two.py'), 'class A:\n    pass\n\nclass B:\n    pass\n');
    const r = await archiver(['--model-name', 'two', '--model-path', dir, '--handler', 'two:handle', '--export-path', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^warning: handler "two:handle" will not load: it defines no top-level function handle\(\) and 2 classes \(A, B\)/m,
    );
    await writeFile(join(dir, 'h.mjs'), 'export function predict(data) { return data; }\n');
    const n = await archiver([
      '--model-name',
      'n',
      '--model-path',
      dir,
      '--handler',
      'h:handle',
      '--runtime',
      'node',
      '--export-path',
      out,
    ]);
    assert.equal(n.code, 0, n.stderr);
    assert.match(n.stderr, /warning: handler "h:handle" will not load: h\.mjs exports no handle/);
  });

  it('prints notes for python2 and TorchServe built-in handlers on stderr', async (t) => {
    const { dir, out } = await model(t);
    const r = await archiver([
      '--model-name',
      'b',
      '--model-path',
      dir,
      '--handler',
      'text_classifier',
      '--runtime',
      'python2',
      '--export-path',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /python2/);
    assert.match(r.stderr, /TorchServe built-in/);
  });

  it('shows a progress bar on a TTY for large inputs and clears it before the summary', async (t) => {
    const { dir, out } = await model(t);
    const hasScript = (await run('sh', ['-c', 'command -v script'])).code === 0;
    if (!hasScript) {
      t.skip('util-linux `script` (to get a pty) is not installed');
      return;
    }
    await writeFile(join(dir, 'big.bin'), '');
    await truncate(join(dir, 'big.bin'), 2 ** 30); // sparse zeros: quick, but long enough for a few frames
    const cmd = [process.execPath, ARCHIVER_BIN, '--model-name', 'p', '--model-path', dir, '--handler', 'handler', '--export-path', out]
      .map((a) => `'${a}'`)
      .join(' ');
    const r = await run('script', ['-qec', cmd, '/dev/null']);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /\rp \[[= >]+\] +\d+% [\d.]+ (?:[KMG]i)?B\/1(?:\.0)? GiB [\d.]+ (?:[KMG]i)?B\/s ETA /);
    assert.match(r.stdout, /\r\x1b\[Kcreated .*p\.mar/);
  });

  it('help lists the create flags; root help still works', async () => {
    const sub = await archiver(['create', '--help']);
    assert.equal(sub.code, 0);
    for (const flag of [
      '--model-name',
      '--serialized-file',
      '--extra-files',
      '--requirements-file',
      '--config-file',
      '--exclude',
      '--archive-format',
      '--json',
    ]) {
      assert.ok(sub.stdout.includes(flag), flag);
    }
    const root = await archiver(['--help']);
    assert.equal(root.code, 0);
    assert.match(root.stdout, /create/);
  });
});

describe('model-archiver create: errors', () => {
  it('usage errors exit 2: missing --model-name or --handler, unknown format or runtime', async (t) => {
    const { dir, out } = await model(t);
    const cases = [
      ['--model-path', dir, '--handler', 'handler'],
      ['--model-name', 'x', '--model-path', dir],
      ['--model-name', 'x', '--handler', 'handler', '--archive-format', 'zip'],
      ['--model-name', 'x', '--handler', 'handler', '--runtime', 'java'],
    ];
    for (const args of cases) {
      const r = await archiver([...args, '--export-path', out]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^error: /);
    }
  });

  it('no arguments at all is a usage error (exit 2, help on stderr); `help` itself succeeds', async () => {
    const bare = await archiver([]);
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /Usage: model-archiver/);
    assert.equal(bare.stdout, '');
    const help = await archiver(['help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Usage: model-archiver/);
  });

  it('bad inputs exit 1 with one line and create nothing', async (t) => {
    const { tmp, dir, out } = await model(t);
    const cases: Array<[string[], RegExp]> = [
      [['--model-name', 'nl\n', '--model-path', dir, '--handler', 'handler'], /model name "nl\\n" is invalid/],
      [['--model-name', 'x y', '--model-path', dir, '--handler', 'handler'], /invalid/],
      [['--model-name', 'x', '--model-path', join(tmp, 'nope'), '--handler', 'handler'], /nope/],
      [
        ['--model-name', 'x', '--model-path', dir, '--handler', 'missing:handle'],
        /handler module "missing" not found: looked for missing\.py/,
      ],
      [['--model-name', 'x', '--model-path', dir, '--handler', 'handler', '--serialized-file', join(tmp, 'none.pt')], /none\.pt/],
    ];
    for (const [args, message] of cases) {
      const r = await archiver([...args, '--export-path', out]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(oneErrorLine(r.stderr), message);
    }
    assert.deepEqual(await readdir(tmp), ['model'], 'no output dir was created');
  });

  it('an existing archive needs -f/--force', async (t) => {
    const { dir, out } = await model(t);
    await mkdir(out);
    await writeFile(join(out, 'x.mar'), 'old');
    const args = ['--model-name', 'x', '--model-path', dir, '--handler', 'handler', '--export-path', out];
    const r = await archiver(args);
    assert.equal(r.code, 1);
    assert.match(oneErrorLine(r.stderr), /x\.mar already exists; use -f\/--force to overwrite it/);
    assert.equal(await readFile(join(out, 'x.mar'), 'utf8'), 'old');
    const f = await archiver([...args, '-f']);
    assert.equal(f.code, 0, f.stderr);
    await checkZipEverywhere(join(out, 'x.mar'));
  });

  it('a file that fails mid-run: exit 1, one line, no partial archive', async (t) => {
    const { tmp, dir, out } = await model(t);
    await symlink('/proc/self/status', join(dir, 'zz-proc.txt'));
    for (const format of ['default', 'tgz', 'no-archive']) {
      const r = await archiver([
        '--model-name',
        'x',
        '--model-path',
        dir,
        '--handler',
        'handler',
        '--export-path',
        out,
        '--archive-format',
        format,
      ]);
      assert.equal(r.code, 1);
      assert.match(oneErrorLine(r.stderr), /zz-proc\.txt changed while it was being archived/);
      assert.deepEqual(await readdir(tmp), ['model'], `${format}: the export dir this run created is removed again`);
    }
  });

  it('SIGINT removes the temp file and exits 130', async (t) => {
    const { dir, out } = await model(t);
    await mkdir(out);
    await writeFile(join(dir, 'huge.bin'), '');
    await truncate(join(dir, 'huge.bin'), 3 * 2 ** 30); // sparse: takes seconds to hash, costs no disk
    const watcher = watch(out);
    t.after(() => watcher.close());
    const tempSeen = new Promise<string>((resolve) =>
      watcher.on('change', (_e, name) => String(name).startsWith('.x.mar.tmp-') && resolve(String(name))),
    );
    const child = spawn(
      process.execPath,
      [
        ARCHIVER_BIN,
        '--model-name',
        'x',
        '--model-path',
        dir,
        '--handler',
        'handler',
        '--export-path',
        out,
        '--archive-format',
        'zip-store',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    await tempSeen;
    child.kill('SIGINT');
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted/);
    assert.deepEqual(await readdir(out), []);
  });
});
