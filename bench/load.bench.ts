/**
 * Model loading benchmark (not part of npm test): `npm run bench:load`.
 *
 * Generates once, under .bench/load/ (gitignored), archives with the noop Python handler: 1 GiB of random weights
 * stored, 1 GiB of deflatable weights (bfloat16-like floats in 4 shards of 256 MiB, deflated), 2,000 small text
 * files, a 1 KiB model, and four 256 MiB stored models for the server. Then, in BENCH_RUNS interleaved rounds
 * (default 3; the quick warm cases run 3 times per round), with `sync` before each case so no case pays for the
 * previous one's writeback, and the baselines' outputs removed once measured:
 *
 * - per archive: `cp` (the baseline every ratio is taken to), `unzip`, `model-archiver extract`, and
 *   `model-server predict` to its exit with an empty cache (cold) and with the cache filled (warm);
 * - the server: `model-server start` until "Model server started." (its listeners bind only once the startup models
 *   are loaded) with 1 and with 4 of the 256 MiB models, cold and warm; `cp` of those archives as the baseline.
 *
 * The table shows medians, ratios to `cp` of the same archives, and peak RSS; then the issue's goals, met or not.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { createArchive } from '../src/archive/pack.js';
import { packagePath } from '../src/util/package-info.js';
import { writeStream, writeTextFiles } from './generate.js';
import { envWithoutExtraCa, type Measurement, markdownTable, measure, median, peakRssKb, verdict } from './measure.js';

const ROOT = packagePath('.bench', 'load');
const WORK = join(ROOT, 'work');
const CACHE = join(WORK, 'cache');
// -2: the archives the current writer makes (large stored entries start at a page boundary, zip-writer.ts)
const DONE = join(ROOT, 'archives.complete-2');
const ARCHIVER = packagePath('bin', 'model-archiver.js');
const SERVER = packagePath('bin', 'model-server.js');
const NOOP = packagePath('fixtures', 'handlers', 'python', 'noop.py');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
/** BENCH_ONLY=server: only the groups whose name contains it (the goals then report what they can). */
const ONLY = process.env['BENCH_ONLY'] ?? '';
const QUICK_REPEAT = 3;
const MiB = 1 << 20;

const ARCHIVES = {
  stored: { file: join(ROOT, 'stored-1g.mar'), label: '1 GiB stored' },
  deflated: { file: join(ROOT, 'deflated-1g.mar'), label: '1 GiB deflated weights' },
  small: { file: join(ROOT, 'small-2000.mar'), label: '2,000 small files' },
  tiny: { file: join(ROOT, 'tiny-1k.mar'), label: '1 KiB' },
} as const;
const SERVER_MODELS = [0, 1, 2, 3].map((i) => join(ROOT, `s${i}.mar`));

/** float32 weights rounded to bfloat16 (low two bytes zero) in a narrow exponent range: deflate takes them to ~40 %. */
function deflatableWeights(n: number): Buffer {
  const rnd = randomBytes(n / 2);
  const out = Buffer.alloc(n);
  for (let i = 0, j = 0; i < n; i += 4, j += 2) {
    out[i + 2] = rnd[j]!;
    out[i + 3] = (rnd[j + 1]! & 0x3f) | 0x3c;
  }
  return out;
}

async function archive(name: string, fill: (dir: string) => Promise<void>, format: 'default' | 'zip-store'): Promise<void> {
  const src = join(ROOT, `src-${name}`);
  await rm(src, { recursive: true, force: true });
  await mkdir(src, { recursive: true });
  await copyFile(NOOP, join(src, 'noop.py'));
  await fill(src);
  await createArchive({ modelName: name, handler: 'noop:handle', modelPath: src, exportPath: ROOT, archiveFormat: format, force: true });
  await rm(src, { recursive: true, force: true });
}

async function generate(): Promise<void> {
  if (existsSync(DONE)) return;
  process.stderr.write('generating .bench/load (1 GiB stored, 1 GiB deflated, 2,000 files, 1 KiB, 4 x 256 MiB; once)...\n');
  await mkdir(ROOT, { recursive: true });
  await archive('stored-1g', (d) => writeStream(join(d, 'weights.bin'), 1024 * MiB, randomBytes), 'zip-store');
  await archive(
    'deflated-1g',
    async (d) => {
      for (let s = 0; s < 4; s++) await writeStream(join(d, `weights-${s}-of-4.bin`), 256 * MiB, deflatableWeights);
    },
    'default',
  );
  await archive('small-2000', (d) => writeTextFiles(d), 'default');
  await archive('tiny-1k', (d) => writeFile(join(d, 'weights.bin'), randomBytes(1024)), 'zip-store');
  await archive('s0', (d) => writeStream(join(d, 'weights.bin'), 256 * MiB, randomBytes), 'zip-store');
  for (const i of [1, 2, 3]) await copyFile(SERVER_MODELS[0]!, SERVER_MODELS[i]!);
  await writeFile(DONE, new Date().toISOString());
}

const node = process.execPath;
// without the sandbox's NODE_EXTRA_CA_CERTS (measure.ts says why)
const env = { ...envWithoutExtraCa(), MAR_CACHE_DIR: CACHE };

interface Case {
  group: string;
  name: string;
  /** Run before the timed part (not timed): removes outputs, empties the cache for cold cases. */
  before?: () => Promise<void>;
  /**
   * Run after the timed part (not timed): removes what a baseline wrote. A GiB of just-written copies left beside the
   * next case slowed it here (the 4-model server start: 830-960 ms with the copies left, 530-540 ms without), so no
   * case runs beside another's output.
   */
  after?: () => Promise<void>;
  run: () => Promise<Measurement>;
  /** Cheap cases run several times per round. */
  quick?: boolean;
}

const clearCache = (): Promise<void> => rm(CACHE, { recursive: true, force: true });

/** `model-server start` until it says it started (listeners bind after the startup models loaded), then SIGTERM. */
async function serverReady(models: string[]): Promise<Measurement> {
  const config = join(WORK, 'server.properties');
  await writeFile(
    config,
    [
      'inference_address=http://127.0.0.1:0',
      'management_address=http://127.0.0.1:0',
      `model_store=${ROOT}`,
      // copies of one archive: the same model name inside, so each is named here
      `load_models=${models.map((m, i) => `m${i}=${basename(m)}`).join(',')}`,
      'default_workers_per_model=1',
      '',
    ].join('\n'),
  );
  const started = performance.now();
  const child: ChildProcess = spawn(node, [SERVER, 'start', '--config', config], { cwd: WORK, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let failures = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = await new Promise<boolean>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (/Model server started\./.test(l)) resolve(true);
      if (/failed to start|Failed to load/.test(l)) failures += `${l}\n`;
    });
    void exited.then(() => resolve(false));
  });
  const wallMs = performance.now() - started;
  const rssKb = await peakRssKb(child.pid!).catch(() => 0);
  child.kill('SIGTERM');
  await exited;
  return { wallMs, rssKb, code: ready && failures === '' ? 0 : 1, stderr: failures + stderr };
}

function cases(): Case[] {
  const out: Case[] = [];
  const copy = join(WORK, 'copy');
  const unzipped = join(WORK, 'unzip');
  const extracted = join(WORK, 'extract');
  const predict = (file: string) => () => measure(node, [SERVER, 'predict', file, '--data', 'x', '--quiet'], WORK, env);
  for (const [key, a] of Object.entries(ARCHIVES)) {
    if (key !== 'tiny') {
      out.push({
        group: a.label,
        name: 'cp',
        before: () => rm(copy, { recursive: true, force: true }),
        after: () => rm(copy, { recursive: true, force: true }),
        run: () => measure('cp', [a.file, copy], WORK),
      });
      out.push({
        group: a.label,
        name: 'unzip',
        before: () => rm(unzipped, { recursive: true, force: true }),
        after: () => rm(unzipped, { recursive: true, force: true }),
        run: () => measure('unzip', ['-q', a.file, '-d', unzipped], WORK),
      });
      out.push({
        group: a.label,
        name: 'model-archiver extract',
        before: () => rm(extracted, { recursive: true, force: true }),
        after: () => rm(extracted, { recursive: true, force: true }),
        run: () => measure(node, [ARCHIVER, 'extract', a.file, '-o', extracted, '-q'], WORK),
      });
    }
    out.push({ group: a.label, name: 'predict, cold', before: clearCache, run: predict(a.file) });
    out.push({ group: a.label, name: 'predict, warm', run: predict(a.file), quick: true });
  }
  for (const n of [1, 4]) {
    const models = SERVER_MODELS.slice(0, n);
    const group = `server, ${n} x 256 MiB`;
    out.push({
      group,
      name: 'cp',
      before: () => rm(copy, { recursive: true, force: true }).then(() => mkdir(copy)),
      run: () => measure('cp', [...models, copy], WORK),
      after: () => rm(copy, { recursive: true, force: true }),
    });
    out.push({ group, name: 'ready, cold', before: clearCache, run: () => serverReady(models) });
    out.push({ group, name: 'ready, warm', run: () => serverReady(models), quick: true });
  }
  return out;
}

function sync(): Promise<unknown> {
  return measure('sync', [], WORK);
}

async function main(): Promise<void> {
  await generate();
  await mkdir(WORK, { recursive: true });
  // Every archive in the page cache: what is measured is extraction, not the first read of the archive.
  await measure('sh', ['-c', `cat ${ROOT}/*.mar > /dev/null`], ROOT);
  const all = cases().filter((c) => c.group.includes(ONLY));
  const results = new Map<Case, Measurement[]>();
  for (let round = 0; round < RUNS; round++) {
    for (const c of all) {
      for (let i = 0; i < (c.quick ? QUICK_REPEAT : 1); i++) {
        await c.before?.();
        await sync();
        const m = await c.run();
        await c.after?.();
        if (m.code !== 0) throw new Error(`${c.group} / ${c.name} failed (${m.code}): ${m.stderr.slice(-2000)}`);
        results.set(c, [...(results.get(c) ?? []), m]);
        process.stderr.write(`round ${round + 1}/${RUNS}: ${c.group} / ${c.name} ${m.wallMs.toFixed(0)} ms\n`);
      }
    }
  }
  const med = (group: string, name: string): number => {
    const c = all.find((x) => x.group === group && x.name === name);
    return c ? median(results.get(c)!.map((m) => m.wallMs)) : Number.NaN;
  };
  const rows: string[][] = [['archive', 'case', 'wall (median)', 'vs cp', 'peak RSS']];
  let lastGroup = '';
  for (const c of all) {
    const ms = results.get(c)!;
    const wall = median(ms.map((m) => m.wallMs));
    const cp = c.group === ARCHIVES.tiny.label ? Number.NaN : med(c.group, 'cp');
    rows.push([
      c.group === lastGroup ? '' : c.group,
      c.name,
      `${wall.toFixed(0)} ms`,
      Number.isNaN(cp) ? '-' : `${(wall / cp).toFixed(2)}x`,
      `${(Math.max(...ms.map((m) => m.rssKb)) / 1024).toFixed(0)} MB`,
    ]);
    lastGroup = c.group;
  }
  process.stdout.write(
    `\n${RUNS} interleaved rounds (warm cases ${QUICK_REPEAT}x per round), median wall time; peak RSS is the largest seen\n`,
  );
  process.stdout.write(`${markdownTable(rows)}\n\ngoals:\n`);

  const S = ARCHIVES.stored.label;
  const T = ARCHIVES.tiny.label;
  const goal = (text: string, ok: boolean): void => {
    if (!text.includes('NaN')) process.stdout.write(`- ${text}: ${verdict(ok)}\n`);
  };
  const cold = med(S, 'predict, cold') - med(T, 'predict, cold');
  const cpS = med(S, 'cp');
  goal(
    `cold: predict ${S} - predict ${T} = ${cold.toFixed(0)} ms <= 1.5 x cp (${(1.5 * cpS).toFixed(0)} ms), ${(cold / cpS).toFixed(2)}x cp`,
    cold <= 1.5 * cpS,
  );
  const warm = med(S, 'predict, warm') - med(T, 'predict, warm');
  goal(`warm: predict ${S} - predict ${T}, cache filled = ${warm.toFixed(0)} ms <= 50 ms`, warm <= 50);
  const one = med('server, 1 x 256 MiB', 'ready, cold');
  const four = med('server, 4 x 256 MiB', 'ready, cold');
  goal(
    `server: 4 x 256 MiB ready in ${four.toFixed(0)} ms <= 2.2 x one (${(2.2 * one).toFixed(0)} ms), ${(four / one).toFixed(2)}x`,
    four <= 2.2 * one,
  );
  const extracting = all.filter((c) => /extract|cold/.test(c.name));
  const rss = extracting.length > 0 ? Math.max(...extracting.flatMap((c) => results.get(c)!.map((m) => m.rssKb))) / 1024 : Number.NaN;
  process.stdout.write(
    `- RSS while extracting (extract, cold predict and server rows): largest ${rss.toFixed(0)} MB < 100 MB: ${verdict(rss < 100)}\n`,
  );
  process.stdout.write(`load average at the end: ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}\n`);
  await rm(WORK, { recursive: true, force: true });
}

await main();
