/** Where the manifest is: one discovery over any "read this path if it exists" source. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MarError } from '../../src/errors.js';
import { discoverManifest, type ReadIfExists } from '../../src/manifest/discover.js';

const files =
  (entries: Record<string, string>): ReadIfExists =>
  async (path) =>
    path in entries ? Buffer.from(entries[path]!) : null;
const LEGACY = JSON.stringify({ 'Model-Archive-Version': '0.1', Model: { 'Model-Name': 'old', Service: 'svc.py' } });

test('MAR-INF/MANIFEST.json first, else a legacy root MANIFEST.json migrated, else none', async () => {
  const modern = { runtime: 'python', model: { modelName: 'm', handler: 'h' } };
  assert.deepEqual(await discoverManifest(files({ 'MAR-INF/MANIFEST.json': JSON.stringify(modern), 'MANIFEST.json': LEGACY })), {
    kind: 'mar-inf',
    path: 'MAR-INF/MANIFEST.json',
    json: modern,
  });
  const legacy = await discoverManifest(files({ 'MANIFEST.json': LEGACY }));
  assert.equal(legacy.kind, 'legacy');
  assert.deepEqual(legacy.kind === 'legacy' && legacy.json, {
    runtime: 'python',
    model: { modelName: 'old', handler: 'svc.py', modelVersion: 'snapshot' },
    specificationVersion: '0.1',
    implementationVersion: '1.0',
    modelServerVersion: '1.0',
  });
  assert.deepEqual(await discoverManifest(files({})), { kind: 'none' });
  // a BOM is tolerated; the shape is the caller's business
  assert.deepEqual(await discoverManifest(files({ 'MAR-INF/MANIFEST.json': '\ufeff[1]' })), {
    kind: 'mar-inf',
    path: 'MAR-INF/MANIFEST.json',
    json: [1],
  });
});

test('failures are returned, not thrown: bad JSON is MANIFEST_INVALID naming the file, a read error is passed on', async () => {
  const bad = await discoverManifest(files({ 'MAR-INF/MANIFEST.json': '{nope', 'MANIFEST.json': LEGACY }), (p) => `${p} in x.mar`);
  assert.equal(bad.kind, 'mar-inf', 'a broken current manifest is not replaced by the legacy one');
  const error = bad.kind === 'mar-inf' ? bad.error : undefined;
  assert.ok(error instanceof MarError && error.code === 'MANIFEST_INVALID');
  assert.match(error.message, /^MAR-INF\/MANIFEST\.json in x\.mar is not valid JSON \(.*\); rebuild the archive with model-archiver$/);

  const boom = new Error('EIO');
  const unreadable = await discoverManifest(async () => {
    throw boom;
  });
  assert.deepEqual(unreadable, { kind: 'mar-inf', path: 'MAR-INF/MANIFEST.json', error: boom });
});
