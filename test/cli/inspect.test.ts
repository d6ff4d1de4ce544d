import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildReferenceArchives, suiteDir } from '../helpers/reference-archives.js';
import { archiver } from '../helpers/util.js';

const dir = await suiteDir();
const paths = await buildReferenceArchives(dir, ['torchserve', 'legacy', 'bad-schema', 'truncated']);

test('model-archiver inspect prints an aligned summary a user can read', async () => {
  const r = await archiver(['inspect', paths.torchserve]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.trimEnd().split('\n');
  const field = (label: string) => lines.find((l) => l.startsWith(label.padEnd(11)))?.slice(11);
  assert.equal(field('format'), `zip (.mar), ${field('format')!.split(', ')[1]}`);
  assert.equal(field('manifest'), 'MAR-INF/MANIFEST.json');
  assert.equal(field('model'), 'ts_edge  version 1.0');
  assert.equal(field('runtime'), 'python');
  assert.equal(field('handler'), 'my_handler.py');
  assert.equal(field('serialized'), 'model.pt');
  assert.equal(field('config'), 'model-config.yaml');
  assert.equal(field('created'), '24/11/2026 19:48:06, archiver 0.12.0');
  assert.match(field('files')!, /^6 files, 16\.\d KiB$/);
  assert.match(field('compressed')!, /% of original\): deflated 6$/);
});

test('--files lists every entry with method, size and compressed size in aligned columns', async () => {
  const r = await archiver(['inspect', '--files', paths.torchserve]);
  assert.equal(r.code, 0, r.stderr);
  const table = r.stdout
    .slice(r.stdout.indexOf('\nmethod') + 1)
    .trimEnd()
    .split('\n');
  assert.match(table[0]!, /^method\s+size\s+compressed\s+path$/);
  assert.equal(table.length, 7);
  const weights = table.find((l) => l.endsWith('  model.pt'))!;
  assert.match(weights, /^deflated\s+16384\s+\d+  model\.pt$/);
  // Columns line up: every path starts at the same offset.
  const offsets = new Set(table.slice(1).map((l) => l.length - l.split('  ').pop()!.length));
  assert.equal(offsets.size, 1);
});

test('--json is machine-readable and includes the entries', async () => {
  const r = await archiver(['inspect', '--json', paths.legacy]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.manifestKind, 'legacy');
  assert.equal(report.modelName, 'squeezenet_v1.1');
  assert.equal(report.format, 'zip');
  assert.equal(report.entries.length, 4);
  assert.deepEqual(Object.keys(report.entries[0]).sort(), ['compressedSize', 'method', 'mode', 'path', 'size', 'type']);
});

test('schema errors are shown but inspect still succeeds', async () => {
  const r = await archiver(['inspect', paths['bad-schema']]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /MAR-INF\/MANIFEST\.json \(1 schema problem\)/);
  assert.match(r.stdout, /- runtime: must be one of python, python2, python3, node, LSP/);
});

test('errors are one line with exit 1; a missing argument is a usage error with exit 2', async () => {
  const missing = await archiver(['inspect', join(dir, 'nope.mar')]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /^error: cannot read .*nope\.mar: no such file or directory; check the path\n$/);
  const truncated = await archiver(['inspect', paths.truncated]);
  assert.equal(truncated.code, 1);
  assert.equal(truncated.stderr.split('\n').length, 2);
  assert.match(truncated.stderr, /truncated/);
  const usage = await archiver(['inspect']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /missing required argument 'archive'/);
});
