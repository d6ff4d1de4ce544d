/**
 * The layering of src/ (docs/ARCHITECTURE.md): imports go cli → server → runtime → archive → manifest → handler
 * → errors/util, never back up, so a lower layer can be read, tested and reused without the ones above it.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { packagePath } from '../../src/util/package-info.js';

const SRC = packagePath('src');
/** Higher imports lower; equal ranks may import each other. */
const RANK: Record<string, number> = {
  util: 0,
  'errors.ts': 0,
  handler: 1,
  manifest: 2,
  archive: 3,
  runtime: 4,
  server: 5,
  cli: 6,
  'index.ts': 7,
};

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tsFiles(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const layerOf = (file: string): string => relative(SRC, file).split('/')[0]!.replace(/\.js$/, '.ts');

test('src/ imports only run down the layers: no module imports a layer above its own', async () => {
  const violations: string[] = [];
  const files = await tsFiles(SRC);
  assert.ok(files.length > 50, 'the source tree is found');
  for (const file of files) {
    const from = layerOf(file);
    assert.ok(from in RANK, `${relative(SRC, file)} is in a folder the layer table does not know: add it to RANK`);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const to = layerOf(resolve(dirname(file), m[1]!));
      if ((RANK[to] ?? 0) > RANK[from]!) violations.push(`${relative(SRC, file)} imports ${m[1]} (${from} → ${to})`);
    }
  }
  assert.deepEqual(violations, []);
});
