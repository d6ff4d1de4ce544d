import assert from 'node:assert/strict';
import { unlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseDigests } from '../../src/archive/digests.js';
import { type CreateArchiveOptions, createArchive } from '../../src/archive/pack.js';
import { MarError } from '../../src/errors.js';
import { run, tempDir } from '../helpers/util.js';
import { checkZipEverywhere } from '../helpers/zip-checkers.js';
import { HANDLER_PY, makeModelDir, pseudoRandom, sha256, writeFiles } from './fixture-model.js';

const EPOCH = 1_700_000_000; // 2023-11-14 22:13:20 UTC

const PY_ZIP_DUMP = `
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    print(json.dumps({i.filename: {'sha256': hashlib.sha256(z.read(i)).hexdigest(), 'method': i.compress_type,
        'date': list(i.date_time), 'mode': (i.external_attr >> 16) & 0o7777} for i in z.infolist()}))
`;

const PY_TAR_DUMP = `
import hashlib, json, sys, tarfile
out = {}
with tarfile.open(sys.argv[1], 'r:gz') as t:
    for m in t.getmembers():
        f = t.extractfile(m)
        out[m.name] = {'sha256': hashlib.sha256(f.read()).hexdigest() if f else None, 'mode': m.mode, 'uid': m.uid,
            'gid': m.gid, 'uname': m.uname, 'gname': m.gname, 'mtime': m.mtime, 'type': m.type.decode()}
print(json.dumps(out))
`;

interface ZipDumpEntry {
  sha256: string;
  method: number;
  date: number[];
  mode: number;
}

async function dumpZip(file: string): Promise<Record<string, ZipDumpEntry>> {
  const r = await run('python3', ['-c', PY_ZIP_DUMP, file]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, ZipDumpEntry>;
}

async function dumpTar(
  file: string,
): Promise<
  Record<string, { sha256: string; mode: number; uid: number; gid: number; uname: string; gname: string; mtime: number; type: string }>
> {
  const r = await run('python3', ['-c', PY_TAR_DUMP, file]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<MarError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MarError, `expected MarError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    assert.ok(!err.message.includes('\n'), 'error messages are one line');
    return err;
  }
  assert.fail(`expected ${code}`);
}

function base(dir: string, out: string, extra: Partial<CreateArchiveOptions> = {}): CreateArchiveOptions {
  return { modelName: 'm', handler: 'handler:handle', modelPath: dir, exportPath: out, ...extra };
}

describe('createArchive: default format', () => {
  it('applies the MMS inclusion rules, stores weights, deflates text, and every reader accepts it', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    const { included } = await makeModelDir(model);
    const r = await createArchive(base(model, join(tmp, 'out'), { modelVersion: '2.0', description: 'demo model' }));
    assert.equal(r.path, join(tmp, 'out', 'm.mar'));
    assert.equal(r.format, 'default');
    assert.equal(r.bytes, (await stat(r.path)).size);
    assert.equal(r.sha256, sha256(await readFile(r.path)));

    const { python, java } = await checkZipEverywhere(r.path);
    const expectedNames = [...Object.keys(included)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(python.names, [...expectedNames, 'MAR-INF/FILES.sha256', 'MAR-INF/MANIFEST.json']);
    assert.deepEqual(
      java.map((e) => e.name),
      python.names,
    );
    assert.equal(r.entryCount, expectedNames.length + 2);

    const dump = await dumpZip(r.path);
    for (const [name, content] of Object.entries(included)) assert.equal(dump[name]!.sha256, sha256(content), name);
    assert.equal(dump['weights.bin']!.method, 0, 'incompressible weights are stored');
    assert.equal(dump['small-weights.bin']!.method, 0, 'a small random file is stored');
    assert.equal(dump['vocab.txt']!.method, 8, 'text is deflated');
    assert.equal(dump['zeros.bin']!.method, 8, 'zeros are deflated');
    assert.equal(dump['run.sh']!.mode, 0o755);
    assert.equal(dump['vocab.txt']!.mode, 0o644, 'modes are normalised to 0644/0755');
    assert.deepEqual(r.methods, { stored: python.stored, deflated: python.deflated });

    const manifest = JSON.parse(await unzipText(r.path, 'MAR-INF/MANIFEST.json'));
    assert.deepEqual(manifest.model, { modelName: 'm', handler: 'handler:handle', modelVersion: '2.0', description: 'demo model' });
    assert.equal(manifest.runtime, 'python');
    assert.match(manifest.createdOn, /^\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d$/);
    assert.deepEqual(r.manifest, manifest);

    // The digest file lists every other entry with the source's sha256 and size.
    const digests = parseDigests(await unzipText(r.path, 'MAR-INF/FILES.sha256'));
    assert.deepEqual(digests.errors, []);
    const byPath = new Map(digests.lines.map((l) => [l.path, l]));
    for (const [name, content] of Object.entries(included)) {
      assert.equal(byPath.get(name)?.sha256, sha256(content), name);
      assert.equal(byPath.get(name)?.size, content.length, name);
    }
    assert.equal(byPath.get('MAR-INF/MANIFEST.json')?.sha256, dump['MAR-INF/MANIFEST.json']!.sha256);
    assert.equal(byPath.has('MAR-INF/FILES.sha256'), false);
  });

  it('zip-store stores every entry and readers accept it', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await makeModelDir(model);
    const r = await createArchive(base(model, tmp, { archiveFormat: 'zip-store' }));
    const { python } = await checkZipEverywhere(r.path);
    assert.equal(python.deflated, 0);
    assert.deepEqual(r.methods, { stored: r.entryCount, deflated: 0 });
  });
});

async function unzipText(file: string, name: string): Promise<string> {
  const r = await run('unzip', ['-p', file, name]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('createArchive: tgz and no-archive', () => {
  it('tgz puts everything under <model-name>/ with fixed owner, modes and mtime', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    const { included } = await makeModelDir(model);
    const r = await createArchive(base(model, tmp, { archiveFormat: 'tgz', sourceDateEpoch: EPOCH }));
    assert.equal(r.path, join(tmp, 'm.tar.gz'));
    const gz = await readFile(r.path);
    assert.deepEqual([...gz.subarray(0, 10)].slice(0, 8), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0], 'gzip header: no name, mtime 0');
    const dump = await dumpTar(r.path);
    const names = Object.keys(dump);
    assert.ok(
      names.every((n) => n.startsWith('m/')),
      names.join(','),
    );
    for (const [name, content] of Object.entries(included)) assert.equal(dump[`m/${name}`]?.sha256, sha256(content), name);
    assert.ok(dump['m/MAR-INF/MANIFEST.json']);
    assert.ok(dump['m/MAR-INF/FILES.sha256']);
    for (const e of Object.values(dump)) {
      assert.equal(e.type, '0');
      assert.equal(e.uid, 0);
      assert.equal(e.gid, 0);
      assert.equal(e.uname, '');
      assert.equal(e.gname, '');
      assert.equal(e.mtime, EPOCH);
    }
    assert.equal(dump['m/run.sh']!.mode, 0o755);
    assert.equal(dump['m/handler.py']!.mode, 0o644);
    const gunzip = await run('gzip', ['-t', r.path]);
    assert.equal(gunzip.code, 0, gunzip.stderr);
  });

  it('no-archive writes <export>/<name>/ and --force replaces it without stale files', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    const { included } = await makeModelDir(model);
    const out = join(tmp, 'out');
    const r = await createArchive(base(model, out, { archiveFormat: 'no-archive' }));
    assert.equal(r.path, join(out, 'm'));
    for (const [name, content] of Object.entries(included)) assert.deepEqual(await readFile(join(r.path, name)), content, name);
    assert.ok((await stat(join(r.path, 'MAR-INF', 'MANIFEST.json'))).isFile());
    assert.equal((await stat(join(r.path, 'run.sh'))).mode & 0o777, 0o755);
    await writeFile(join(r.path, 'stale.txt'), 'left from an old run');

    await rejectsWith(createArchive(base(model, out, { archiveFormat: 'no-archive' })), 'OUTPUT_EXISTS', /--force/);
    await createArchive(base(model, out, { archiveFormat: 'no-archive', force: true }));
    await assert.rejects(stat(join(r.path, 'stale.txt')), { code: 'ENOENT' });
    assert.deepEqual((await readdir(out)).sort(), ['m'], 'no temp or old dirs left');
  });
});

describe('createArchive: reproducibility', () => {
  for (const format of ['default', 'zip-store', 'tgz'] as const) {
    it(`${format}: two runs with SOURCE_DATE_EPOCH are byte-identical`, async (t) => {
      const tmp = await tempDir(t);
      const model = join(tmp, 'model');
      await makeModelDir(model);
      const a = await createArchive(base(model, join(tmp, 'a'), { archiveFormat: format, sourceDateEpoch: EPOCH }));
      // Touch a source between runs: entry times come from the epoch, not the files.
      await utimes(join(model, 'handler.py'), new Date(), new Date());
      const b = await createArchive(base(model, join(tmp, 'b'), { archiveFormat: format, sourceDateEpoch: EPOCH }));
      assert.equal(a.sha256, b.sha256);
      assert.ok((await readFile(a.path)).equals(await readFile(b.path)));
      if (format !== 'tgz') {
        const dump = await dumpZip(a.path);
        assert.deepEqual(dump['handler.py']!.date, [2023, 11, 14, 22, 13, 20]);
        assert.match(await unzipText(a.path, 'MAR-INF/MANIFEST.json'), /"createdOn": "14\/11\/2023 22:13:20"/);
      }
    });
  }

  it('no-archive: two runs give identical trees (contents, modes, mtimes)', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await makeModelDir(model);
    const a = await createArchive(base(model, join(tmp, 'a'), { archiveFormat: 'no-archive', sourceDateEpoch: EPOCH }));
    const b = await createArchive(base(model, join(tmp, 'b'), { archiveFormat: 'no-archive', sourceDateEpoch: EPOCH }));
    assert.equal(a.sha256, b.sha256);
    for (const e of a.entries) {
      const pa = join(a.path, e.archivePath);
      const pb = join(b.path, e.archivePath);
      assert.ok((await readFile(pa)).equals(await readFile(pb)), e.archivePath);
      const [sa, sb] = [await stat(pa), await stat(pb)];
      assert.equal(sa.mode, sb.mode);
      assert.equal(sa.mtimeMs, EPOCH * 1000);
      assert.equal(sb.mtimeMs, EPOCH * 1000);
    }
  });
});

describe('createArchive: inputs', () => {
  it('TorchServe-style flags land at the root and fill the manifest; a handler file path is added', async (t) => {
    const tmp = await tempDir(t);
    await writeFiles(tmp, {
      'src/my_handler.py': HANDLER_PY,
      'model.pt': 'weights',
      'arch/model_def.py': 'class Net: pass\n',
      'requirements.txt': 'numpy\n',
      'model-config.yaml': 'minWorkers: 1\nbatchSize: 4\n',
      'extra/a.txt': 'a',
      'extra/deep/b.txt': 'b',
      'vocab.json': '{}',
      'data/x.json': '1',
      'data/y.json': '2',
      'data/z.txt': '3',
    });
    const r = await createArchive({
      modelName: 'ts',
      handler: `${join(tmp, 'src/my_handler.py')}:infer`,
      serializedFile: join(tmp, 'model.pt'),
      modelFile: join(tmp, 'arch/model_def.py'),
      extraFiles: ` ${join(tmp, 'extra')} , ${join(tmp, 'vocab.json')},${join(tmp, 'data')}/*.json`,
      requirementsFile: join(tmp, 'requirements.txt'),
      configFile: join(tmp, 'model-config.yaml'),
      modelVersion: '1.0',
      exportPath: join(tmp, 'out'),
    });
    const { python } = await checkZipEverywhere(r.path);
    assert.deepEqual(python.names!.slice(0, -2), [
      'a.txt',
      'deep/b.txt',
      'model-config.yaml',
      'model.pt',
      'model_def.py',
      'my_handler.py',
      'requirements.txt',
      'vocab.json',
      'x.json',
      'y.json',
    ]);
    assert.deepEqual(r.manifest.model, {
      modelName: 'ts',
      serializedFile: 'model.pt',
      handler: 'my_handler.py:infer',
      modelFile: 'model_def.py',
      modelVersion: '1.0',
      requirementsFile: 'requirements.txt',
      configFile: 'model-config.yaml',
    });
  });

  it('two different inputs on one archive path are an error naming both; the same file twice is fine', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY, 'config.json': '{}' });
    await writeFiles(tmp, { 'other/config.json': '{"x": 1}' });
    const err = await rejectsWith(
      createArchive(base(model, join(tmp, 'out'), { extraFiles: join(tmp, 'other', 'config.json') })),
      'ENTRY_COLLISION',
      /config\.json/,
    );
    assert.ok(err.message.includes(join(model, 'config.json')) && err.message.includes(join(tmp, 'other', 'config.json')), err.message);
    await assert.rejects(stat(join(tmp, 'out', 'm.mar')), { code: 'ENOENT' });
    const ok = await createArchive(base(model, join(tmp, 'out'), { serializedFile: join(model, 'config.json') }));
    assert.equal(ok.manifest.model.serializedFile, 'config.json');
  });

  it('--exclude and .marignore (gitignore-like) drop matching paths', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, {
      'handler.py': HANDLER_PY,
      '.marignore': '# comments\n*.log\ncheckpoints/\n/top.tmp\n!keep.log\n',
      'a.log': 'x',
      'keep.log': 'x',
      'sub/b.log': 'x',
      'checkpoints/c1.pt': 'x',
      'sub/checkpoints/c2.pt': 'x',
      'top.tmp': 'x',
      'sub/top.tmp': 'x',
      'data/train/big.csv': 'x',
      'data/test/small.csv': 'x',
      'data/readme.md': 'x',
    });
    const r = await createArchive(base(model, join(tmp, 'out'), { exclude: ['data/**/*.csv', 'nothing?'] }));
    assert.deepEqual(
      r.entries.map((e) => e.archivePath),
      ['data/readme.md', 'handler.py', 'keep.log', 'sub/top.tmp', 'MAR-INF/FILES.sha256', 'MAR-INF/MANIFEST.json'],
    );
  });

  it('follows symlinks to files and dirs; dangling links and cycles are errors naming the link', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(tmp, { 'shared/weights.bin': 'w', 'shared/sub/k.txt': 'k' });
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    await symlink(join(tmp, 'shared/weights.bin'), join(model, 'linked.bin'));
    await symlink(join(tmp, 'shared'), join(model, 'shared-dir'));
    const r = await createArchive(base(model, join(tmp, 'out')));
    assert.deepEqual(r.entries.map((e) => e.archivePath).slice(0, -2), [
      'handler.py',
      'linked.bin',
      'shared-dir/sub/k.txt',
      'shared-dir/weights.bin',
    ]);

    await symlink(join(tmp, 'nowhere'), join(model, 'dangling'));
    await rejectsWith(createArchive(base(model, join(tmp, 'out2'))), 'SYMLINK_DANGLING', /dangling.*nowhere|nowhere/);
    await unlink(join(model, 'dangling'));

    await mkdir(join(model, 'loop'));
    await symlink(model, join(model, 'loop', 'back'));
    await rejectsWith(createArchive(base(model, join(tmp, 'out3'))), 'SYMLINK_CYCLE', /loop\/back/);
    await unlink(join(model, 'loop', 'back'));

    await symlink(join(model, 'self'), join(model, 'self'));
    await rejectsWith(createArchive(base(model, join(tmp, 'out4'))), 'SYMLINK_CYCLE', /self/);
  });

  it('a dangling or looping link that is excluded (or skipped as MMS does) is left out, not an error', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY, '.marignore': 'latest\n' });
    await symlink(join(tmp, 'checkpoint-gone'), join(model, 'latest')); // via .marignore
    await symlink(join(tmp, 'nowhere'), join(model, 'scratch')); // via --exclude
    await symlink(join(model, 'self'), join(model, 'self')); // a loop, via --exclude
    await symlink(join(tmp, 'gone.pyc'), join(model, 'old.pyc')); // skipped by name
    const r = await createArchive(base(model, join(tmp, 'out'), { exclude: ['scratch', 'self'] }));
    assert.deepEqual(r.entries.map((e) => e.archivePath).slice(0, -2), ['handler.py']);
    // Not excluded: still the error naming the link.
    await rejectsWith(createArchive(base(model, join(tmp, 'out2'), { exclude: ['self'] })), 'SYMLINK_DANGLING', /scratch/);
  });

  it('a file name that is not valid UTF-8 is an error naming it, unless excluded', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    const made = await run('python3', [
      '-c',
      'import os,sys; open(os.path.join(sys.argv[1].encode(), b"caf\\xe9.txt"), "w").close()',
      model,
    ]);
    assert.equal(made.code, 0, made.stderr);
    await rejectsWith(createArchive(base(model, join(tmp, 'out'))), 'INPUT_INVALID', /not valid UTF-8/);
    const r = await createArchive(base(model, join(tmp, 'out'), { exclude: ['caf*.txt'] }));
    assert.deepEqual(r.entries.map((e) => e.archivePath).slice(0, -2), ['handler.py']);
  });

  it('validates the name, the model path, the handler and the config before writing anything', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY, 'bad.yaml': 'minWorkers: two\n', 'broken.yaml': 'a: [1,\n' });
    const out = join(tmp, 'out');
    await rejectsWith(createArchive(base(model, out, { modelName: 'm\n' })), 'NAME_INVALID');
    await rejectsWith(createArchive(base(model, out, { modelName: '-m' })), 'NAME_INVALID');
    await rejectsWith(createArchive(base(join(tmp, 'missing'), out)), 'INPUT_NOT_FOUND', /missing/);
    await rejectsWith(createArchive(base(join(model, 'handler.py'), out)), 'INPUT_INVALID', /not a directory/);
    await rejectsWith(createArchive(base(model, out, { handler: 'nope:handle' })), 'HANDLER_NOT_FOUND', /nope\.py, nope\/__init__\.py/);
    await rejectsWith(createArchive(base(model, out, { handler: 'handler', runtime: 'node' })), 'HANDLER_NOT_FOUND', /handler\.js/);
    await rejectsWith(createArchive(base(model, out, { configFile: join(model, 'bad.yaml') })), 'CONFIG_INVALID', /minWorkers/);
    await rejectsWith(createArchive(base(model, out, { configFile: join(model, 'broken.yaml') })), 'CONFIG_INVALID', /YAML/);
    await rejectsWith(createArchive(base(model, out, { serializedFile: model })), 'INPUT_INVALID', /directory/);
    await assert.rejects(stat(out), { code: 'ENOENT' }, 'nothing was created');
  });

  it('an MMS handler in a subdirectory or a package is found in the archive and written as given', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'code/h.py': HANDLER_PY, 'pkg/serve/__init__.py': HANDLER_PY });
    const a = await createArchive(base(model, tmp, { handler: 'code/h:infer' }));
    assert.equal(a.manifest.model.handler, 'code/h:infer');
    const b = await createArchive(base(model, tmp, { modelName: 'b', handler: 'pkg.serve' }));
    assert.equal(b.manifest.model.handler, 'pkg.serve');
    assert.deepEqual(b.entries.map((e) => e.archivePath).slice(0, -2), ['code/h.py', 'pkg/serve/__init__.py']);
  });

  it('an --export-path that is a file (or below one) is named as the problem, and left alone', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    for (const exportPath of [join(model, 'handler.py'), join(model, 'handler.py', 'sub')]) {
      await rejectsWith(createArchive(base(model, exportPath)), 'OUTPUT_FAILED', /^--export-path .* is not a directory/);
    }
    assert.equal(await readFile(join(model, 'handler.py'), 'utf8'), HANDLER_PY);
  });

  it('a model version with a newline or other control character is refused before anything is written', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    for (const modelVersion of ['1.0\n', '1.0\r', 'a\tb']) {
      await rejectsWith(
        createArchive(base(model, join(tmp, 'out'), { modelVersion })),
        'INPUT_INVALID',
        /model version .* control character/,
      );
    }
    await assert.rejects(stat(join(tmp, 'out')), { code: 'ENOENT' });
    const ok = await createArchive(base(model, join(tmp, 'out'), { modelVersion: '1.0-rc.1+build 7' }));
    assert.equal(ok.manifest.model.modelVersion, '1.0-rc.1+build 7');
  });

  it('a handler with an empty function name ("h:") is a usage error naming both spellings that work', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    await rejectsWith(
      createArchive(base(model, join(tmp, 'out'), { handler: 'handler:' })),
      'USAGE',
      /empty function name.*write handler \(function handle\) or handler:<function>/,
    );
    await writeFiles(model, { 'h.py': HANDLER_PY });
    await rejectsWith(createArchive(base(model, join(tmp, 'out'), { handler: 'h:' })), 'USAGE', /--handler h: has an empty function name/);
    await assert.rejects(stat(join(tmp, 'out')), { code: 'ENOENT' });
  });

  it('an --extra-files wildcard skips hidden names (as Python glob and the shell) and what MMS skips', async (t) => {
    const tmp = await tempDir(t);
    const conf = join(tmp, 'conf');
    await writeFiles(conf, {
      'labels.txt': 'a',
      '.env': 'SECRET=1',
      '.git/config': '[core]',
      '__pycache__/x.txt': 'x',
      'old.pyc': 'c',
      'sub/k.txt': 'k',
    });
    await writeFiles(tmp, { 'handler.py': HANDLER_PY });
    const r = await createArchive({
      modelName: 'g',
      handler: join(tmp, 'handler.py'),
      exportPath: join(tmp, 'out'),
      extraFiles: join(conf, '*'),
    });
    assert.deepEqual(r.entries.map((e) => e.archivePath).slice(0, -2), ['handler.py', 'k.txt', 'labels.txt']);
    // A pattern that asks for hidden names gets them.
    const h = await createArchive({
      modelName: 'h',
      handler: join(tmp, 'handler.py'),
      exportPath: join(tmp, 'out'),
      extraFiles: join(conf, '.e*'),
    });
    assert.deepEqual(h.entries.map((e) => e.archivePath).slice(0, -2), ['.env', 'handler.py']);
  });

  it('no-archive --force never replaces a directory that holds the model dir or an input (data loss)', async (t) => {
    const tmp = await tempDir(t);
    const store = join(tmp, 'store');
    const model = join(store, 'm'); // the model dir is where the output would go
    await writeFiles(model, { 'handler.py': HANDLER_PY, '.git/HEAD': 'ref', 'notes.pyc': 'x' });
    await rejectsWith(
      createArchive(base(model, store, { archiveFormat: 'no-archive', force: true })),
      'USAGE',
      /--force would replace .*store\/m, which is .*store\/m .*choose another/,
    );
    assert.equal(await readFile(join(model, '.git', 'HEAD'), 'utf8'), 'ref');
    assert.deepEqual((await readdir(store)).sort(), ['m']);
    // An input file inside the old output dir counts too.
    await writeFiles(tmp, { 'src/handler.py': HANDLER_PY });
    const out = join(tmp, 'out');
    await createArchive({ modelName: 'x', handler: join(tmp, 'src', 'handler.py'), exportPath: out, archiveFormat: 'no-archive' });
    await rejectsWith(
      createArchive({ modelName: 'x', handler: join(out, 'x', 'handler.py'), exportPath: out, archiveFormat: 'no-archive', force: true }),
      'USAGE',
      /holds .*x\/handler\.py/,
    );
    // Replacing an unrelated old output still works.
    const again = await createArchive({
      modelName: 'x',
      handler: join(tmp, 'src', 'handler.py'),
      exportPath: out,
      archiveFormat: 'no-archive',
      force: true,
    });
    assert.equal(again.entryCount, 3);
  });

  it('a model name too long for a file name is refused up front with the limit, not an ENAMETOOLONG on a temp file', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    await rejectsWith(
      createArchive(base(model, join(tmp, 'out'), { modelName: 'a'.repeat(240) })),
      'NAME_INVALID',
      /240 characters long; use at most 200/,
    );
    await assert.rejects(stat(join(tmp, 'out')), { code: 'ENOENT' });
    for (const archiveFormat of ['tgz', 'no-archive'] as const) {
      const r = await createArchive(base(model, join(tmp, 'out'), { modelName: 'a'.repeat(200), archiveFormat }));
      assert.ok(r.path.endsWith('a'.repeat(200) + (archiveFormat === 'tgz' ? '.tar.gz' : '')));
    }
  });

  it('a Windows-style handler path is read with / separators, so no backslash reaches the manifest', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'code/h.py': HANDLER_PY });
    await writeFiles(tmp, { 'src/disk_handler.py': HANDLER_PY });
    const a = await createArchive(base(model, tmp, { handler: 'code\\h:infer' }));
    assert.equal(a.manifest.model.handler, 'code/h:infer');
    // A handler file on disk given with backslashes is found and added at the root, as with /.
    const b = await createArchive({
      modelName: 'b',
      handler: `${join(tmp, 'src').replace(/\//g, '\\')}\\disk_handler.py`,
      exportPath: tmp,
    });
    assert.equal(b.manifest.model.handler, 'disk_handler.py');
    assert.deepEqual(b.entries.map((e) => e.archivePath).slice(0, -2), ['disk_handler.py']);
  });

  it('accepts TorchServe built-in handlers and python2 with a note, and node handlers', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'model.pt': 'w', 'handler.mjs': 'export function handle(x) { return x; }\n' });
    const notes: string[] = [];
    const r = await createArchive(base(model, tmp, { handler: 'image_classifier', runtime: 'python2', onNote: (m) => notes.push(m) }));
    assert.equal(r.manifest.model.handler, 'image_classifier');
    assert.equal(r.manifest.runtime, 'python2');
    assert.ok(notes.some((n) => /python2/.test(n)));
    assert.ok(notes.some((n) => /TorchServe built-in/.test(n)));
    const n = await createArchive(base(model, tmp, { modelName: 'n', handler: 'handler:handle', runtime: 'node' }));
    assert.equal(n.manifest.runtime, 'node');
  });
});

describe('createArchive: failures leave nothing behind', () => {
  it('a file deleted mid-run fails the run, removes the temp file and keeps the existing archive', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY, 'a.bin': Buffer.alloc(3_000_000, 1) });
    for (let i = 0; i < 40; i++) await writeFile(join(model, `z${String(i).padStart(2, '0')}.txt`), `file ${i}`);
    const out = join(tmp, 'out');
    const first = await createArchive(base(model, out));
    const before = await readFile(first.path);
    let deleted = false;
    await rejectsWith(
      createArchive(
        base(model, out, {
          force: true,
          onProgress: () => {
            if (deleted) return;
            deleted = true;
            // Later entries were listed but are not prefetched yet: this one fails when it is reached.
            unlinkSync(join(model, 'z39.txt'));
          },
        }),
      ),
      'INPUT_NOT_FOUND',
      /z39\.txt/,
    );
    assert.deepEqual(await readdir(out), ['m.mar'], 'temp file removed');
    assert.ok((await readFile(first.path)).equals(before), 'existing archive untouched');
  });

  it('a file that is longer than stat said (e.g. /proc) fails cleanly mid-run', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    await symlink('/proc/self/status', join(model, 'zz-status.txt'));
    const out = join(tmp, 'out');
    for (const archiveFormat of ['default', 'tgz', 'no-archive'] as const) {
      await rejectsWith(
        createArchive(base(model, out, { archiveFormat })),
        'INPUT_INVALID',
        /zz-status\.txt changed while it was being archived/,
      );
      assert.deepEqual(await readdir(tmp), ['model'], `${archiveFormat}: the export dir this run created is removed again`);
    }
  });

  it('a failed run removes the export dirs it created, and only those', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    await symlink('/proc/self/status', join(model, 'zz-status.txt'));
    const fail = (out: string): Promise<unknown> =>
      rejectsWith(createArchive(base(model, out)), 'INPUT_INVALID', /zz-status\.txt changed while it was being archived/);
    await fail(join(tmp, 'a', 'b', 'c'));
    assert.deepEqual(await readdir(tmp), ['model'], 'a/b/c created by the run, all removed');
    await writeFiles(join(tmp, 'keep'), { 'note.txt': 'mine' });
    await fail(join(tmp, 'keep', 'b', 'c'));
    assert.deepEqual(await readdir(join(tmp, 'keep')), ['note.txt'], 'the existing parent and its file stay');
  });

  it('an aborted run removes its temp output', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY, 'big.bin': Buffer.alloc(8 << 20, 3) });
    const out = join(tmp, 'out');
    const controller = new AbortController();
    const reason = new MarError('OUTPUT_FAILED', 'interrupted');
    await assert.rejects(
      createArchive(base(model, out, { signal: controller.signal, onProgress: () => controller.abort(reason) })),
      (err) => err === reason,
    );
    assert.deepEqual(await readdir(tmp), ['model']);
  });

  it('a full disk (ENOSPC) fails every format cleanly and leaves nothing behind', async (t) => {
    const tmp = await tempDir(t);
    const full = join(tmp, 'small-fs');
    await mkdir(full);
    // A 1 MiB tmpfs needs root and mount rights; skip elsewhere.
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', full]);
    if (mounted.code !== 0) {
      t.skip('cannot mount a small tmpfs here');
      return;
    }
    try {
      const model = join(tmp, 'model');
      await writeFiles(model, { 'handler.py': HANDLER_PY, 'weights.bin': pseudoRandom(3_000_000, 5) });
      for (const archiveFormat of ['default', 'zip-store', 'tgz', 'no-archive'] as const) {
        await rejectsWith(createArchive(base(model, full, { archiveFormat })), 'OUTPUT_FAILED', /no space left on device/);
        assert.deepEqual(await readdir(full), [], archiveFormat);
      }
    } finally {
      // Unmount before tempDir's cleanup removes the mount point; it fails if we leaked an open fd there.
      const umount = await run('umount', [full]);
      assert.equal(umount.code, 0, `umount failed (leaked fd?): ${umount.stderr}`);
    }
  });

  it('an existing archive is an error without force', async (t) => {
    const tmp = await tempDir(t);
    const model = join(tmp, 'model');
    await writeFiles(model, { 'handler.py': HANDLER_PY });
    await writeFile(join(tmp, 'm.mar'), 'precious');
    await rejectsWith(createArchive(base(model, tmp)), 'OUTPUT_EXISTS', /m\.mar already exists; use -f\/--force/);
    assert.equal(await readFile(join(tmp, 'm.mar'), 'utf8'), 'precious');
    await createArchive(base(model, tmp, { force: true }));
    assert.notEqual(await readFile(join(tmp, 'm.mar'), 'utf8'), 'precious');
  });

  it('never archives its own output when the export path is inside the model dir', async (t) => {
    const tmp = await tempDir(t);
    await writeFiles(tmp, { 'handler.py': HANDLER_PY });
    await createArchive(base(tmp, tmp, { archiveFormat: 'tgz' }));
    const again = await createArchive(base(tmp, tmp, { archiveFormat: 'tgz', force: true }));
    assert.deepEqual(
      again.entries.map((e) => e.archivePath),
      ['handler.py', 'MAR-INF/FILES.sha256', 'MAR-INF/MANIFEST.json'],
    );
  });
});
