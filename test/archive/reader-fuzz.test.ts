/**
 * Property tests of the archive readers: a .mar (zip), a .tar.gz (mutated before or after gzip) and a manifest,
 * damaged at random, are read by inspect, verify, extract and the model loader; each ends in a result or a
 * MarError (never another exception, an uncaught error or a hang), a file read whole is the file that was
 * written, and extraction writes nothing outside its target.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { extractArchive } from '../../src/archive/extract.js';
import { inspectArchive } from '../../src/archive/inspect.js';
import { createArchive } from '../../src/archive/pack.js';
import { ArchiveReader } from '../../src/archive/read.js';
import { verifyArchive } from '../../src/archive/verify.js';
import { MarError } from '../../src/errors.js';
import { openModel } from '../../src/runtime/model.js';
import { fuzzParams, mutate, mutationArb } from '../helpers/fuzz.js';
import { tempDir } from '../helpers/util.js';
import { pseudoRandom, writeFiles } from './fixture-model.js';

const OP_TIMEOUT_MS = 15_000;

const FILES: Record<string, Buffer> = {
  'handler.py': Buffer.from('def handle(data, context):\n    return data\n'),
  'weights.bin': pseudoRandom(3000, 3),
  'vocab.txt': Buffer.from('a\nb\nc\n'.repeat(200)),
  'sub/config.json': Buffer.from('{"k": 1}\n'),
};

/** Runs one operation with a deadline: its value, or the error it ended with; a hang fails the property. */
async function settle<T>(what: string, op: () => Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for ${OP_TIMEOUT_MS} ms`)), OP_TIMEOUT_MS);
  });
  try {
    return { value: await Promise.race([op(), deadline]) };
  } catch (error) {
    if (error instanceof Error && /hung for/.test(error.message)) throw error;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

function assertTyped(what: string, r: { error?: unknown }): void {
  if (r.error === undefined) return;
  assert.ok(r.error instanceof MarError, `${what} threw a non-MarError: ${(r.error as Error)?.stack ?? String(r.error)}`);
}

/**
 * Every reader over one damaged archive; checks the outcomes and what extraction left. `checksummed`: the format
 * guards the file data (zip CRC-32, gzip CRC), so a file read whole must be the file written. A tar has no
 * checksum on member data: damage inside a member before gzipping is, to any reader, just other content.
 */
async function readEverything(path: string, work: string, checksummed: boolean): Promise<void> {
  const opened = await settle('open', () => ArchiveReader.open(path));
  assertTyped('ArchiveReader.open', opened);
  if (opened.value) {
    const reader = opened.value;
    try {
      for (const e of reader.entries()) {
        if (e.type !== 'file') continue;
        const got = await settle(`read ${e.path}`, () => reader.readEntry(e, 1 << 20));
        assertTyped(`readEntry(${e.path})`, got);
        // read whole and checked against its CRC/size: it is the file that was written (or a file we did not write)
        const original = FILES[e.path];
        if (checksummed && got.value && original && e.size === original.length)
          assert.ok(got.value.equals(original), `${e.path} read back different bytes`);
      }
    } finally {
      await reader.close();
    }
  }
  assertTyped('inspect', await settle('inspect', () => inspectArchive(path)));
  assertTyped('verify', await settle('verify', () => verifyArchive(path)));
  const box = join(work, 'box');
  // a case that failed earlier left its box (shrinking runs more cases after a failure)
  await rm(box, { recursive: true, force: true });
  await mkdir(box);
  const extracted = await settle('extract', () => extractArchive(path, join(box, 'out')));
  assertTyped('extract', extracted);
  assert.deepEqual(await readdir(box), extracted.value ? ['out'] : [], 'extraction writes its target or nothing, and no temp dir is left');
  const opened2 = await settle('openModel', () => openModel(path, { cacheDir: join(work, 'cache') }));
  assertTyped('openModel', opened2);
  await opened2.value?.release();
  await rm(box, { recursive: true, force: true });
}

async function buildModel(work: string, format: 'default' | 'tgz'): Promise<Buffer> {
  const modelDir = join(work, `model-${format}`);
  await writeFiles(modelDir, FILES);
  const created = await createArchive({
    modelName: 'fuzz',
    handler: 'handler:handle',
    modelPath: modelDir,
    exportPath: join(work, `out-${format}`),
    archiveFormat: format,
    sourceDateEpoch: 0,
  });
  return readFile(created.path);
}

test('zip (.mar): mutated archives end in a result or a MarError, never a crash or a hang', async (t) => {
  const work = await tempDir(t);
  const mar = await buildModel(work, 'default');
  await readEverything(await write(work, 'intact.mar', mar), work, true);
  await fc.assert(
    fc.asyncProperty(fc.array(mutationArb, { minLength: 1, maxLength: 4 }), async (mutations) => {
      await readEverything(await write(work, 'case.mar', mutate(mar, mutations)), work, true);
    }),
    fuzzParams(80),
  );
});

test('tar.gz: mutated tars (gzipped after the damage) and mutated gzip streams end in a result or a MarError', async (t) => {
  const work = await tempDir(t);
  const tgz = await buildModel(work, 'tgz');
  const tar = gunzipSync(tgz);
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), async (inTar, mutations) => {
      const bytes = inTar ? gzipSync(mutate(tar, mutations)) : mutate(tgz, mutations);
      await readEverything(await write(work, 'case.tar.gz', bytes), work, !inTar);
    }),
    fuzzParams(60),
  );
});

test('manifest: damaged JSON, wrong types and random values end in a loaded model or a MarError', async (t) => {
  const work = await tempDir(t);
  const dir = join(work, 'model');
  await writeFiles(dir, { 'handler.py': FILES['handler.py']! });
  const valid = Buffer.from(
    JSON.stringify({
      runtime: 'python',
      model: { modelName: 'fuzz', handler: 'handler:handle', modelVersion: '1.0' },
      specificationVersion: '1.0',
    }),
  );
  const manifest = fc.oneof(
    fc.array(mutationArb, { minLength: 1, maxLength: 4 }).map((m) => mutate(valid, m)),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
    fc
      .record({
        runtime: fc.anything(),
        model: fc.oneof(fc.anything(), fc.dictionary(fc.constantFrom('modelName', 'handler', 'configFile', 'modelVersion'), fc.anything())),
      })
      .map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  );
  await fc.assert(
    fc.asyncProperty(manifest, async (bytes) => {
      await writeFiles(dir, { 'MAR-INF/MANIFEST.json': bytes });
      const opened = await settle('openModel', () => openModel(dir));
      assertTyped('openModel', opened);
      await opened.value?.release();
      assertTyped('inspect', await settle('inspect', () => inspectArchive(dir)));
      assertTyped('verify', await settle('verify', () => verifyArchive(dir)));
    }),
    fuzzParams(200),
  );
});

async function write(dir: string, name: string, bytes: Buffer): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}
