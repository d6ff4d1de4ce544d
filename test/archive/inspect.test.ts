import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { inspectArchive } from '../../src/archive/inspect.js';
import { MarError } from '../../src/errors.js';
import { buildReferenceArchives, suiteDir } from '../helpers/reference-archives.js';

/** Bytes this process got from read(2)-like calls so far (Linux /proc/self/io `rchar`, every thread counted). */
function bytesReadByThisProcess(): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
}

const dir = await suiteDir();
const paths = await buildReferenceArchives(dir, [
  'mms',
  'torchserve',
  'torchserve-store',
  'torchserve-tgz',
  'legacy',
  'unpacked',
  'infozip',
  'bad-schema',
  'no-manifest',
  'sparse-5g',
  'truncated',
]);

test('inspect a TorchServe 0.12 .mar: manifest fields, sizes and methods', async () => {
  const r = await inspectArchive(paths.torchserve);
  assert.equal(r.format, 'zip');
  assert.equal(r.manifestKind, 'mar-inf');
  assert.deepEqual(r.schemaErrors, []);
  assert.equal(r.modelName, 'ts_edge');
  assert.equal(r.modelVersion, '1.0');
  assert.equal(r.runtime, 'python');
  assert.equal(r.handler, 'my_handler.py');
  assert.equal(r.createdOn, '24/11/2026 19:48:06');
  assert.equal(r.archiverVersion, '0.12.0');
  assert.equal(r.entryCount, 6);
  assert.equal(r.fileCount, 6);
  assert.deepEqual(r.methods, { deflated: 6 });
  assert.ok(r.compressedSize < r.totalSize);
  assert.deepEqual(
    r.entries.map((e) => e.path),
    ['model_def.py', 'model.pt', 'my_handler.py', 'requirements.txt', 'model-config.yaml', 'MAR-INF/MANIFEST.json'],
  );
  const weights = r.entries.find((e) => e.path === 'model.pt')!;
  assert.equal(weights.size, 16384);
  assert.equal(weights.method, 'deflated');
});

test('inspect an MMS 1.0.4 .mar (no version) and a zip-store .mar', async () => {
  const mms = await inspectArchive(paths.mms);
  assert.equal(mms.modelName, 'edge');
  assert.equal(mms.modelVersion, null);
  assert.equal(mms.handler, 'model_handler:handle');
  assert.equal(mms.manifest?.['specificationVersion'], '1.0');
  const store = await inspectArchive(paths['torchserve-store']);
  assert.deepEqual(store.methods, { stored: 6 });
  assert.equal(store.compressedSize, store.totalSize);
});

test('inspect a TorchServe tgz: paths relative to the <model-name>/ root', async () => {
  const r = await inspectArchive(paths['torchserve-tgz']);
  assert.equal(r.format, 'tgz');
  assert.equal(r.tgzRoot, 'ts_edge');
  assert.equal(r.modelName, 'ts_edge');
  assert.ok(r.entries.some((e) => e.path === 'MAR-INF/MANIFEST.json'));
  assert.equal(r.compressedSize, r.archiveBytes);
});

test('inspect a legacy 0.x archive: root MANIFEST.json migrated and shown as legacy', async () => {
  const r = await inspectArchive(paths.legacy);
  assert.equal(r.manifestKind, 'legacy');
  assert.equal(r.modelName, 'squeezenet_v1.1');
  assert.equal(r.modelVersion, 'snapshot');
  assert.equal(r.handler, 'legacy_service.py');
  assert.equal(r.manifest?.['specificationVersion'], '0.1');
});

test('inspect an unpacked directory and an Info-ZIP archive with directory entries', async () => {
  const d = await inspectArchive(paths.unpacked);
  assert.equal(d.format, 'dir');
  assert.equal(d.modelName, 'ts_edge');
  assert.equal(d.fileCount, 6);
  const z = await inspectArchive(paths.infozip);
  assert.equal(z.fileCount, 3);
  assert.ok(z.entries.some((e) => e.type === 'directory' && e.path === 'MAR-INF/'));
  assert.ok((z.methods['deflated'] ?? 0) >= 1);
});

test('schema errors are listed, not fatal; a missing manifest is reported as none', async () => {
  const bad = await inspectArchive(paths['bad-schema']);
  assert.deepEqual(bad.schemaErrors, ['runtime: must be one of python, python2, python3, node, LSP']);
  assert.equal(bad.modelName, 'edge');
  const none = await inspectArchive(paths['no-manifest']);
  assert.equal(none.manifestKind, 'none');
  assert.equal(none.manifest, null);
  assert.equal(none.fileCount, 1);
});

test('a 5 GiB zip64 archive is inspected from its central directory and manifest alone (MiBs read, not GiBs)', async () => {
  // How fast that is lives in bench/archive.bench.ts. Here: reading the 5 GiB entry would show in rchar; the zip
  // reader's 1 MiB read window around the central directory and the manifest is all that may be read.
  const before = bytesReadByThisProcess();
  const r = await inspectArchive(paths['sparse-5g']);
  const read = bytesReadByThisProcess() - before;
  assert.equal(r.totalSize, 5 * 1024 ** 3 + 452 + 204);
  assert.equal(r.modelName, 'edge');
  assert.ok(read < 16 << 20, `inspect read ${read} bytes`);
});

test('a truncated archive is a one-line ARCHIVE_CORRUPT error', async () => {
  await assert.rejects(inspectArchive(paths.truncated), (e: unknown) => {
    assert.ok(e instanceof MarError);
    assert.equal(e.code, 'ARCHIVE_CORRUPT');
    assert.match(e.message, /truncated/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
});
