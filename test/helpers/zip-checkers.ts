/**
 * Independent readers for every zip we write: Java's ZipInputStream (what MMS/TorchServe use), Python's zipfile
 * and Info-ZIP `unzip -t`. Each must accept the archive; together they pin the compatibility rules.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packagePath } from '../../src/util/package-info.js';
import { run } from './util.js';

const JAVA_SOURCE = packagePath('test', 'helpers', 'java', 'ZipCheck.java');

let compiled: Promise<string> | undefined;

/** Compiles ZipCheck.java once into a cache dir under the OS temp dir, keyed by the source's hash. */
export function zipCheckClassDir(): Promise<string> {
  compiled ??= (async () => {
    const key = createHash('sha256').update(readFileSync(JAVA_SOURCE)).digest('hex').slice(0, 16);
    const dir = join(tmpdir(), `mar-zipcheck-${key}`);
    if (existsSync(join(dir, 'ZipCheck.class'))) return dir;
    const staging = await mkdtemp(join(tmpdir(), 'mar-zipcheck-build-'));
    const r = await run('javac', ['-d', staging, JAVA_SOURCE]);
    assert.equal(r.code, 0, `javac failed: ${r.stderr}`);
    // Another test process may have won the race; either copy is fine.
    await rename(staging, dir).catch(async () => rm(staging, { recursive: true, force: true }));
    return dir;
  })();
  return compiled;
}

export interface JavaEntry {
  name: string;
  size: number;
  crc: number;
  method: number;
}

/** Reads archives with java.util.zip.ZipInputStream; fails the test on any exception. */
export async function javaZipCheck(files: readonly string[]): Promise<Map<string, JavaEntry[]>> {
  const dir = await zipCheckClassDir();
  const r = await run('java', ['-Xshare:auto', '-XX:TieredStopAtLevel=1', '-cp', dir, 'ZipCheck', ...files], { timeoutMs: 300_000 });
  assert.equal(
    r.code,
    0,
    `ZipInputStream rejected the archive: ${r.stdout
      .split('\n')
      .filter((l) => l.startsWith('error'))
      .join(' ')} ${r.stderr}`,
  );
  const out = new Map<string, JavaEntry[]>();
  let current: JavaEntry[] = [];
  for (const line of r.stdout.split('\n')) {
    const parts = line.split('\t');
    if (parts[0] === 'archive') {
      current = [];
      out.set(parts[1]!, current);
    } else if (parts[0] === 'entry') {
      current.push({ name: parts[1]!, size: Number(parts[2]), crc: parseInt(parts[3]!, 16), method: Number(parts[4]) });
    }
  }
  return out;
}

const PY_CHECK = `
import json, struct, sys, zipfile
res = {}
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        infos = z.infolist()
        problems = []
        with open(path, 'rb') as f:
            for i in infos:
                f.seek(i.header_offset)
                h = f.read(30)
                sig, ver, flags, method = struct.unpack('<IHHH', h[:10])
                if sig != 0x04034b50: problems.append('bad local header: ' + i.filename)
                if flags & 8: problems.append('data descriptor: ' + i.filename)
                if i.flag_bits & 8: problems.append('data descriptor (central): ' + i.filename)
                if method != i.compress_type: problems.append('method mismatch: ' + i.filename)
                if '\\\\' in i.filename or i.filename.startswith('/') or '..' in i.filename.split('/'): problems.append('bad name: ' + i.filename)
                if any(ord(c) > 127 for c in i.filename) and not (i.flag_bits & 0x800): problems.append('non-ascii without EFS: ' + i.filename)
        res[path] = {
            'bad': bad,
            'problems': problems,
            'count': len(infos),
            'names': [i.filename for i in infos] if len(infos) < 1000 else None,
            'stored': sum(1 for i in infos if i.compress_type == 0),
            'deflated': sum(1 for i in infos if i.compress_type == 8),
            'modes': {i.filename: (i.external_attr >> 16) & 0o7777 for i in infos} if len(infos) < 1000 else None,
        }
print(json.dumps(res))
`;

export interface PythonZipReport {
  bad: string | null;
  problems: string[];
  count: number;
  names: string[] | null;
  stored: number;
  deflated: number;
  modes: Record<string, number> | null;
}

/** Python's zipfile: testzip (CRC of every entry) plus header checks (no data descriptors, names, EFS flag). */
export async function pythonZipCheck(file: string): Promise<PythonZipReport> {
  const r = await run('python3', ['-c', PY_CHECK, file], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, `python zipfile failed: ${r.stderr}`);
  const report = (JSON.parse(r.stdout) as Record<string, PythonZipReport>)[file]!;
  assert.equal(report.bad, null, `python testzip: bad entry ${report.bad}`);
  assert.deepEqual(report.problems, []);
  return report;
}

/** Info-ZIP `unzip -t`: tests every entry's CRC through the central directory. */
export async function unzipTest(file: string): Promise<void> {
  const r = await run('unzip', ['-tqq', file], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, `unzip -t failed: ${r.stdout} ${r.stderr}`);
}

/** All three readers; returns Python's report and the Java entry list. */
export async function checkZipEverywhere(file: string): Promise<{ python: PythonZipReport; java: JavaEntry[] }> {
  const [python, java] = await Promise.all([pythonZipCheck(file), javaZipCheck([file]), unzipTest(file)]);
  const entries = java.get(file)!;
  assert.equal(entries.length, python.count, 'ZipInputStream and the central directory disagree on the entry count');
  return { python, java: entries };
}
