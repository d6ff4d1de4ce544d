import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildReferenceArchives, suiteDir } from '../helpers/reference-archives.js';
import { archiver } from '../helpers/util.js';

const dir = await suiteDir();
const paths = await buildReferenceArchives(dir, ['torchserve-tgz', 'stored-dd', 'tampered-digests', 'mms']);

test('verify: exit 0 and one ok line for a sound archive', async () => {
  const r = await archiver(['verify', paths.mms]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `ok: ${paths.mms} (3 entries, all checks passed)\n`);
  assert.equal(r.stderr, '');
});

test("verify: a handler that needs torch gets the handler line and what the workers' Python has (a warning when it lacks it)", async () => {
  const r = await archiver(['verify', paths['torchserve-tgz']]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `ok: ${paths['torchserve-tgz']} (6 entries, all checks passed)`);
  assert.equal(lines[1], 'handler: my_handler.py: my_handler.py in the archive');
  const python = /^python: Python 3\.\d+\.\d+ at (\S+): torch (\S+)$/.exec(lines[2]!);
  assert.ok(python, lines[2]);
  const lacksTorch = python[2] === 'missing';
  assert.equal(lines.length, lacksTorch ? 4 : 3, r.stdout);
  if (lacksTorch) {
    assert.match(
      lines[3]!,
      /^warning: the handler needs torch; Python 3\.\S+ at \S+ lacks torch, so the model will fail to load: install it for that interpreter or choose the interpreter with --python or MAR_PYTHON .*\[PYTHON_PACKAGE_MISSING\]$/,
    );
  }
  const none = await archiver(['verify', '--json', '--python', '/no/such/python3', paths['torchserve-tgz']]);
  assert.equal(none.code, 0);
  const result = JSON.parse(none.stdout);
  assert.deepEqual(result.python, { command: '/no/such/python3', error: 'cannot run /no/such/python3: not found' });
  assert.deepEqual(
    result.warnings.map((w: { code: string }) => w.code),
    ['PYTHON_PACKAGE_MISSING'],
  );
});

test('verify: exit 1, one problem per line on stdout, a one-line error on stderr', async () => {
  const r = await archiver(['verify', paths['tampered-digests']]);
  assert.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `FAILED: ${paths['tampered-digests']} (3 problems)`);
  assert.equal(lines.length, 4);
  assert.ok(lines.slice(1).every((l) => l.startsWith('problem: ')));
  assert.match(lines[1]!, /^problem: model_handler\.py: has 461 bytes but MAR-INF\/FILES\.sha256 records 452: .* \[DIGEST_MISMATCH\]$/);
  assert.match(r.stderr, /^error: .*tampered-digests\.mar failed verification with 3 problems \(listed above\)\n$/);
});

test('verify --json: parseable result, exit code still tells the outcome', async () => {
  const bad = await archiver(['verify', '--json', paths['stored-dd']]);
  assert.equal(bad.code, 1);
  const result = JSON.parse(bad.stdout);
  assert.equal(result.ok, false);
  assert.deepEqual(
    result.problems.map((p: { code: string; path: string }) => [p.code, p.path]),
    [['STORED_WITH_DATA_DESCRIPTOR', 'weights.bin']],
  );
  const good = await archiver(['verify', '--json', paths.mms]);
  assert.equal(good.code, 0);
  assert.deepEqual(JSON.parse(good.stdout).problems, []);
});
