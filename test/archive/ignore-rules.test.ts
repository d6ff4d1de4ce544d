import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseFromSamples } from '../../src/archive/compression-policy.js';
import { formatDigests, parseDigests } from '../../src/archive/digests.js';
import { IgnoreRules } from '../../src/archive/ignore-rules.js';
import { ProgressBar } from '../../src/archive/progress.js';
import { encodeTarHeader } from '../../src/archive/tar-writer.js';
import { pseudoRandom } from './fixture-model.js';

describe('IgnoreRules (gitignore-like)', () => {
  const cases: Array<[string[], string, boolean, boolean]> = [
    [['*.log'], 'a.log', false, true],
    [['*.log'], 'deep/dir/a.log', false, true],
    [['*.log'], 'a.log.txt', false, false],
    [['/top.txt'], 'top.txt', false, true],
    [['/top.txt'], 'sub/top.txt', false, false],
    [['docs/*.md'], 'docs/a.md', false, true],
    [['docs/*.md'], 'docs/x/a.md', false, false],
    [['docs/**/*.md'], 'docs/x/y/a.md', false, true],
    [['docs/**/*.md'], 'docs/a.md', false, true],
    [['**/cache'], 'a/b/cache', true, true],
    [['build/'], 'build', true, true],
    [['build/'], 'build', false, false],
    [['data/**'], 'data/x/y.bin', false, true],
    [['f?.txt'], 'f1.txt', false, true],
    [['f?.txt'], 'f10.txt', false, false],
    [['f[0-2].txt'], 'f1.txt', false, true],
    [['f[!0-2].txt'], 'f1.txt', false, false],
    [['*.log', '!keep.log'], 'keep.log', false, false],
    [['# comment', '', '  '], '# comment', false, false],
    [['a.b'], 'aXb', false, false],
  ];
  for (const [patterns, path, isDir, expected] of cases) {
    it(`${JSON.stringify(patterns)} ${expected ? 'excludes' : 'keeps'} ${path}${isDir ? '/' : ''}`, () => {
      assert.equal(new IgnoreRules(patterns).isIgnored(path, isDir), expected);
    });
  }
});

describe('tar headers', () => {
  it('uses ustar prefix/name for long ASCII paths and a pax record for longer or non-ASCII ones', () => {
    const long = `m/${'d'.repeat(120)}/file.txt`;
    const h = encodeTarHeader(long, 5, 0o644, 0);
    assert.equal(h.length, 512);
    assert.equal(
      h
        .subarray(345, 345 + 122)
        .toString()
        .replace(/\0+$/, ''),
      `m/${'d'.repeat(120)}`,
    );
    const utf = encodeTarHeader('m/données.txt', 5, 0o644, 0);
    assert.equal(utf.length, 512 * 3, 'pax header + record + ustar header');
    assert.match(utf.subarray(512, 1024).toString('utf8'), /^\d+ path=m\/données\.txt\n/);
    const huge = encodeTarHeader('m/big.bin', 9 * 2 ** 30, 0o644, 0);
    assert.match(huge.subarray(512, 1024).toString('utf8'), /size=9663676416\n/);
  });
});

describe('digest file', () => {
  it('formats sorted `<sha256>  <size>  <path>` lines and parses them back', () => {
    const sha = 'a'.repeat(64);
    const text = formatDigests([
      { sha256: sha, size: 3, path: 'b.txt' },
      { sha256: sha, size: 10, path: 'a b.txt' },
    ]).toString();
    assert.equal(text, `${sha}  10  a b.txt\n${sha}  3  b.txt\n`);
    assert.deepEqual(
      parseDigests(text).lines.map((l) => [l.path, l.size]),
      [
        ['a b.txt', 10],
        ['b.txt', 3],
      ],
    );
    assert.deepEqual(parseDigests(`${sha}  plain.txt\nbad\n`).errors, ['line 2: expected "<sha256>  <size>  <path>"']);
  });
});

describe('compression policy', () => {
  it('stores random data, deflates text, uses the fast level on zeros', () => {
    assert.deepEqual(chooseFromSamples([pseudoRandom(65536)]), { method: 'stored' });
    assert.deepEqual(chooseFromSamples([Buffer.from('hello world '.repeat(5000))]).method, 'deflated');
    assert.deepEqual(chooseFromSamples([Buffer.alloc(65536)]), { method: 'deflated', level: 1 });
    // A compressible header in front of random weights does not fool the spread-out samples.
    assert.deepEqual(
      chooseFromSamples([
        Buffer.from('{"header": 1}'.repeat(5000)),
        pseudoRandom(65536, 2),
        pseudoRandom(65536, 3),
        pseudoRandom(65536, 4),
      ]),
      {
        method: 'stored',
      },
    );
  });
});

describe('progress bar', () => {
  it('renders percent, bytes, rate and ETA on one line', () => {
    let now = 0;
    const bar = new ProgressBar({ stream: process.stderr, label: 'm', now: () => now });
    now = 2000;
    const line = bar.render({ bytesDone: 512 * 2 ** 20, bytesTotal: 2 ** 30, entriesDone: 1, entriesTotal: 3 }, 10);
    assert.equal(line, 'm [====>     ]  50% 512 MiB/1 GiB 256 MiB/s ETA 2.0s');
  });
});
