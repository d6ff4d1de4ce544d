/**
 * The README and docs/ link to each other a lot (the README is short and points at the references): every
 * relative link must reach a file, and every #anchor a heading of that file (GitHub's heading slugs).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { packagePath } from '../../src/util/package-info.js';

const ROOT = packagePath();

/** GitHub's heading anchor: lower case, backticks and punctuation dropped, spaces to '-'. */
function slug(heading: string): string {
  const text = heading
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase();
  return [...text]
    .filter((ch) => /[\p{L}\p{N} _-]/u.test(ch))
    .map((ch) => (ch === ' ' ? '-' : ch))
    .join('');
}

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let inCode = false;
  text.split('\n').forEach((line, i) => {
    if (line.trimStart().startsWith('```')) inCode = !inCode;
    else if (!inCode) out.push([i + 1, line]);
  });
  return out;
}

async function anchorsOf(file: string): Promise<Set<string>> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, line] of proseLines(await readFile(file, 'utf8'))) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const s = slug(m[1]!);
    const n = seen.get(s) ?? 0;
    seen.set(s, n + 1);
    anchors.add(n === 0 ? s : `${s}-${n}`);
  }
  return anchors;
}

test('every relative link in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/ reaches its file and heading', async () => {
  const docs = (await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f));
  const files = [...['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md'].map((f) => join(ROOT, f)), ...docs];
  const broken: string[] = [];
  let checked = 0;
  for (const file of files) {
    for (const [no, line] of proseLines(await readFile(file, 'utf8'))) {
      for (const m of line.replace(/`[^`]*`/g, '``').matchAll(/(?<!!)\[[^\]]*\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        checked++;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const dest = path ? normalize(join(dirname(file), path)) : file;
        const where = `${relative(ROOT, file)}:${no}: ${target}`;
        if (!existsSync(dest)) broken.push(`${where}: no such file`);
        else if (anchor && dest.endsWith('.md') && !(await anchorsOf(dest)).has(anchor)) broken.push(`${where}: no such heading`);
      }
    }
  }
  assert.ok(checked > 100, `links are found (${checked})`);
  assert.deepEqual(broken, []);
});
