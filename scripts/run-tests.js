#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs the compiled dist/test/**/*.test.js with node's test runner (Node 20 has no glob support for --test).
//   node scripts/run-tests.js [--slow | --all] [path substrings...]
// By default *.slow.test.js (the > 4 GiB archive tests) are skipped; --slow runs only those, --all runs both.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...find(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const set = args.includes('--all') ? 'all' : args.includes('--slow') ? 'slow' : 'fast';
const filter = args.filter((a) => a !== '--slow' && a !== '--all');
const isSlow = (f) => f.endsWith('.slow.test.js');
const files = find('dist/test')
  .filter((f) => set === 'all' || (set === 'slow') === isSlow(f))
  .filter((f) => filter.length === 0 || filter.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match (${set}${filter.length ? `: ${filter.join(' ')}` : ''})`);
  process.exit(1);
}
// The extraction cache persists between runs: tests get a private one, removed afterwards, never ~/.cache's.
const cacheDir = mkdtempSync(join(tmpdir(), 'mar-test-cache-'));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], {
  stdio: 'inherit',
  env: { ...process.env, MAR_CACHE_DIR: cacheDir },
});
rmSync(cacheDir, { recursive: true, force: true });
process.exitCode = r.status ?? 1;
