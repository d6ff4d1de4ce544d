/** Builds small model directories on disk for the create tests. */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const HANDLER_PY = 'def handle(data, context):\n    return data\n';

export async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Seeded pseudo-random bytes (incompressible, but the same in every run). */
export function pseudoRandom(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(String(seed)).digest();
  for (let i = 0; i < size; i += 32) {
    block = createHash('sha256').update(block).digest();
    block.copy(out, i, 0, Math.min(32, size - i));
  }
  return out;
}

/**
 * A model dir exercising the inclusion rules: handler, incompressible weights (streamed: > 1 MiB), compressible
 * text, zeros, a non-ASCII name, an executable, plus everything MMS skips.
 */
export async function makeModelDir(root: string): Promise<{ included: Record<string, Buffer>; skipped: string[] }> {
  const included: Record<string, Buffer> = {
    'handler.py': Buffer.from(HANDLER_PY),
    'weights.bin': pseudoRandom(1_500_000, 7),
    'small-weights.bin': randomBytes(4096),
    'vocab.txt': Buffer.from(Array.from({ length: 5000 }, (_, i) => `token${i}\n`).join('')),
    'zeros.bin': Buffer.alloc(2_500_000),
    'données/étiquettes.txt': Buffer.from('chat\nchien\n'),
    '.hidden-file': Buffer.from('hidden files are included, as MMS does\n'),
    'sub/dir/nested.json': Buffer.from('{"a": 1}\n'),
    'MAR-INF/other.json': Buffer.from('{"kept": true}\n'),
    'run.sh': Buffer.from('#!/bin/sh\necho hi\n'),
    'empty.txt': Buffer.alloc(0),
  };
  const skipped: Record<string, string> = {
    '.git/config': 'x',
    '.venv/lib/a.py': 'x',
    '__pycache__/handler.cpython-311.pyc': 'x',
    'sub/__pycache__/x.py': 'x',
    '__MACOSX/._handler.py': 'x',
    'compiled.pyc': 'x',
    'sub/.DS_Store': 'x',
    'old.mar': 'x',
    'MAR-INF/MANIFEST.json': '{"stale": true}',
    'MAR-INF/FILES.sha256': 'stale',
  };
  await writeFiles(root, included);
  await writeFiles(root, skipped);
  await chmod(join(root, 'run.sh'), 0o755);
  await chmod(join(root, 'vocab.txt'), 0o600);
  return { included, skipped: Object.keys(skipped) };
}
