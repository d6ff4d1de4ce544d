/**
 * Disk faults: `create`, `extract` and `predict`'s model cache on a full or a read-only file system. Each fails
 * with one line (exit 1) and leaves nothing half-written behind. The file system is a small tmpfs mounted in a
 * private mount namespace of the command (`unshare`), so it vanishes with it; where no namespace can be made, a
 * file-size limit (`ulimit -f`: writes fail with EFBIG) stands in for a full disk and, for a non-root user, a
 * directory without write permission for a read-only one.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { pseudoRandom, writeFiles } from '../archive/fixture-model.js';
import { ARCHIVER_BIN, SERVER_BIN, tempDir } from '../helpers/util.js';

type Fault = 'full' | 'read-only';

/** How this machine can make a small file system for one command: `unshare` flags, or null. */
const UNSHARE: string[] | null = (() => {
  const probe = (flags: string[]): boolean => {
    const dir = join(tmpdir(), `mar-probe-${process.pid}`);
    spawnSync('mkdir', ['-p', dir]);
    const r = spawnSync('unshare', [...flags, 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs "$0"', dir]);
    spawnSync('rmdir', [dir]);
    return r.status === 0;
  };
  if (probe(['-m'])) return ['-m'];
  if (probe(['-r', '-m'])) return ['-r', '-m'];
  return null;
})();
const IS_ROOT = process.getuid?.() === 0;

interface FaultRun {
  code: number;
  stderr: string;
  /** Every file and directory left in the faulty directory afterwards. */
  left: string[];
  how: string;
}

/** Runs `cmd` with `dir` full (or read-only) and lists what is left in `dir` before the file system goes away. */
async function underFault(dir: string, fault: Fault, cmd: string[]): Promise<FaultRun> {
  const after = 'rc=$?; echo "@@ $rc"; find "$0" -mindepth 1';
  let argv: string[];
  let how: string;
  if (UNSHARE) {
    const opts = fault === 'full' ? 'size=128k' : 'ro,size=128k';
    argv = ['unshare', ...UNSHARE, 'sh', '-c', `mount -t tmpfs -o ${opts} tmpfs "$0" || exit 99; "$@"; ${after}`, dir, ...cmd];
    how = `a ${fault} tmpfs`;
  } else if (fault === 'full') {
    argv = ['sh', '-c', `ulimit -f 128; "$@"; ${after}`, dir, ...cmd];
    how = 'a file-size limit (ulimit -f)';
  } else {
    await chmod(dir, 0o555);
    argv = ['sh', '-c', `"$@"; ${after}`, dir, ...cmd];
    how = 'a directory without write permission';
  }
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.notEqual(status, 99, 'the tmpfs could not be mounted');
  const [, tail] = Buffer.concat(out).toString('utf8').split('@@ ');
  assert.ok(tail !== undefined, `no result from: ${argv.join(' ')}\n${Buffer.concat(err)}`);
  const [rc, ...left] = tail.trim().split('\n');
  return { code: Number(rc), stderr: Buffer.concat(err).toString('utf8'), left: left.map((p) => p.slice(dir.length + 1)).sort(), how };
}

const skipReadOnly =
  !UNSHARE && IS_ROOT ? 'needs unshare (util-linux) to mount a read-only tmpfs: root ignores directory permissions' : false;

/** Exit 1 and one `error:` line that says why (`why` overrides the fault's usual words). */
function assertOneLine(r: FaultRun, fault: Fault, why?: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('['));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^error: /);
  assert.match(lines[0]!, why ?? (fault === 'full' ? /no space left on device|file too large/ : /read-only file system|permission denied/));
}

/** A model with 1 MiB of incompressible weights (its archive does not fit in 128 KiB) and its .mar. */
async function model(t: TestContext): Promise<{ modelDir: string; mar: string; faulty: string }> {
  const work = await tempDir(t);
  const modelDir = join(work, 'model');
  await writeFiles(modelDir, { 'handler.py': 'def handle(data, context):\n    return data\n', 'weights.bin': pseudoRandom(1 << 20, 5) });
  const created = await createArchive({ modelName: 'm', handler: 'handler:handle', modelPath: modelDir, exportPath: join(work, 'out') });
  // the faulty directory lives outside `work`, so that a read-only fallback does not stop the cleanup
  const faulty = await mkdtemp(join(tmpdir(), 'mar-fault-'));
  t.after(async () => {
    await chmod(faulty, 0o755).catch(() => undefined);
    await rm(faulty, { recursive: true, force: true });
  });
  return { modelDir, mar: created.path, faulty };
}

for (const fault of ['full', 'read-only'] as const) {
  const skip = fault === 'read-only' ? skipReadOnly : false;
  for (const format of ['default', 'tgz', 'no-archive'] as const) {
    test(`create --archive-format ${format} into a ${fault} directory: one line, exit 1, nothing left`, { skip }, async (t) => {
      const { modelDir, faulty } = await model(t);
      const r = await underFault(faulty, fault, [
        process.execPath,
        ARCHIVER_BIN,
        'create',
        '--model-name',
        'm',
        '--handler',
        'handler:handle',
        '--model-path',
        modelDir,
        '--export-path',
        faulty,
        '--archive-format',
        format,
      ]);
      t.diagnostic(`fault made with ${r.how}`);
      assertOneLine(r, fault);
      assert.deepEqual(r.left, []);
    });
  }

  test(`extract into a ${fault} directory: one line, exit 1, nothing left`, { skip }, async (t) => {
    const { mar, faulty } = await model(t);
    const r = await underFault(faulty, fault, [process.execPath, ARCHIVER_BIN, 'extract', mar, '-o', join(faulty, 'out')]);
    t.diagnostic(`fault made with ${r.how}`);
    assertOneLine(r, fault);
    assert.deepEqual(r.left, []);
  });

  test(`predict with its model cache in a ${fault} directory: one line, exit 1, no file left in the cache`, { skip }, async (t) => {
    const { mar, faulty } = await model(t);
    const cache = join(faulty, 'cache');
    if (fault === 'full' && !UNSHARE) await mkdir(cache);
    const r = await underFault(faulty, fault, [
      'env',
      `MAR_CACHE_DIR=${cache}`,
      process.execPath,
      SERVER_BIN,
      'predict',
      mar,
      '--data',
      'x',
    ]);
    t.diagnostic(`fault made with ${r.how}`);
    // node's recursive mkdir reports a read-only file system as ENOENT: the line names the cache and the way out
    assertOneLine(r, fault, fault === 'full' ? undefined : /cannot create the model cache .*; set MAR_CACHE_DIR/);
    // at most the (empty) cache directories themselves: the root and its bookkeeping dirs, no entry, no temp
    assert.deepEqual(
      r.left.filter((p) => !/^cache(\/\.(locks|tmp|trash))?$/.test(p)),
      [],
      r.left.join('\n'),
    );
  });
}
