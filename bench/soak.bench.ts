/**
 * Soak under fault injection (not part of npm test):
 *
 *   npm run bench:soak [-- --seconds 60 --long-seconds 180 --connections 64 --kill-every 5]
 *
 * Rows: the noop Python handler with 2 workers; the same with batch_size 8 / max_batch_delay 5; the noop Node
 * handler with 2 workers; each for --seconds with 64 keep-alive connections while one worker is SIGKILLed every
 * 5 s; then the first row again for --long-seconds, to show the frontend's RSS trend. Each row prints requests
 * sent, 200s, 5xx by message, hung requests (no answer in 30 s), connection errors, kills, workers replaced and the
 * frontend's RSS after a 10 s warm-up and at the end; then the issue's targets, met or NOT met.
 * Each server is a real `model-server start` process; the clients run in this one.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { packagePath } from '../src/util/package-info.js';
import { runSoak, type SoakResult, soakTargets } from './soak-run.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    'long-seconds': { type: 'string', default: '180' },
    connections: { type: 'string', default: '64' },
    'kill-every': { type: 'string', default: '5' },
  },
});
const SECONDS = Number(values.seconds);
const LONG_SECONDS = Number(values['long-seconds']);
const CONNECTIONS = Number(values.connections);
const KILL_EVERY = Number(values['kill-every']);
const WARMUP = 10;

interface RowSpec {
  name: string;
  url: 'py' | 'node';
  handler: string;
  runtime?: string;
  batchSize: number;
  maxBatchDelay: number;
  seconds: number;
}

const ROWS: RowSpec[] = [
  { name: 'python noop, 2 workers, batch 1', url: 'py', handler: 'noop:handle', batchSize: 1, maxBatchDelay: 100, seconds: SECONDS },
  {
    name: 'python noop, 2 workers, batch 8 / delay 5',
    url: 'py',
    handler: 'noop:handle',
    batchSize: 8,
    maxBatchDelay: 5,
    seconds: SECONDS,
  },
  {
    name: 'node noop, 2 workers, batch 1',
    url: 'node',
    handler: 'noop:handle',
    runtime: 'node',
    batchSize: 1,
    maxBatchDelay: 100,
    seconds: SECONDS,
  },
  {
    name: `python noop, 2 workers, batch 1 (${LONG_SECONDS} s trend)`,
    url: 'py',
    handler: 'noop:handle',
    batchSize: 1,
    maxBatchDelay: 100,
    seconds: LONG_SECONDS,
  },
];

async function startServer(dir: string): Promise<{ proc: ChildProcess; inference: string; management: string }> {
  const cfg = join(dir, 'config.properties');
  await writeFile(cfg, `inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmodel_store=${join(dir, 'store')}\n`);
  const proc = spawn(process.execPath, [packagePath('bin', 'model-server.js'), 'start', '--config', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  const lines: string[] = [];
  const found = new Promise<{ inference: string; management: string }>((resolve, reject) => {
    let inference = '';
    const on = (line: string): void => {
      lines.push(line);
      const m = /(Inference|Management) API bind to: (\S+)/.exec(line);
      if (m?.[1] === 'Inference') inference = m[2]!;
      if (m?.[1] === 'Management') resolve({ inference, management: m[2]! });
    };
    createInterface({ input: proc.stdout! }).on('line', on);
    createInterface({ input: proc.stderr! }).on('line', () => undefined);
    proc.once('exit', () => reject(new Error(`model-server exited:\n${lines.join('\n')}`)));
  });
  return { proc, ...(await found) };
}

function stopServer(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
  });
}

function fmtMap(m: Map<string, number>): string {
  return m.size === 0 ? '0' : [...m].map(([k, v]) => `${v} × ${k}`).join('; ');
}

async function runRow(spec: RowSpec): Promise<SoakResult> {
  const dir = await mkdtemp(join(tmpdir(), 'mar-soak-'));
  await cp(packagePath('fixtures', 'handlers', 'python'), join(dir, 'store', 'py'), { recursive: true });
  await cp(packagePath('fixtures', 'handlers', 'node'), join(dir, 'store', 'node'), { recursive: true });
  const server = await startServer(dir);
  try {
    const q = new URLSearchParams({
      url: spec.url,
      model_name: 'soak',
      handler: spec.handler,
      initial_workers: '2',
      batch_size: String(spec.batchSize),
      max_batch_delay: String(spec.maxBatchDelay),
      synchronous: 'true',
      ...(spec.runtime ? { runtime: spec.runtime } : {}),
    });
    const reg = await fetch(`${server.management}/models?${q}`, { method: 'POST' });
    if (reg.status !== 200) throw new Error(`register failed: ${reg.status} ${await reg.text()}`);
    process.stderr.write(`${spec.name}: ${spec.seconds} s, ${CONNECTIONS} connections, a worker SIGKILLed every ${KILL_EVERY} s ...\n`);
    return await runSoak({
      predictUrl: `${server.inference}/predictions/soak`,
      describeUrl: `${server.management}/models/soak`,
      serverPid: server.proc.pid!,
      connections: CONNECTIONS,
      seconds: spec.seconds,
      warmupSeconds: WARMUP,
      killEverySeconds: KILL_EVERY,
      sampleEverySeconds: spec.seconds > 60 ? 15 : 10,
    });
  } finally {
    await stopServer(server.proc);
    await rm(dir, { recursive: true, force: true });
  }
}

const results: Array<[RowSpec, SoakResult]> = [];
for (const spec of ROWS) results.push([spec, await runRow(spec)]);

const out: string[] = [];
out.push('', '| row | sent | 200 | 5xx by message | hung | conn. errors | kills | replaced | RSS warm → end (MiB) |');
out.push('|---|---:|---:|---|---:|---:|---:|---:|---|');
for (const [spec, r] of results) {
  out.push(
    `| ${spec.name} | ${r.sent} | ${r.ok} | ${fmtMap(r.errors5xx)}${r.otherAnswers.size ? `; other: ${fmtMap(r.otherAnswers)}` : ''}${r.malformed ? `; malformed: ${r.malformed}` : ''} | ${r.hung} | ${fmtMap(r.connectionErrors)} | ${r.kills} | ${r.workersReplaced} | ${r.rssWarmMiB.toFixed(1)} → ${r.rssEndMiB.toFixed(1)} |`,
  );
}
const [longSpec, long] = results[results.length - 1]!;
out.push('', `RSS trend of "${longSpec.name}" (s: MiB): ${long.rssSamples.map(([s, m]) => `${s}: ${m.toFixed(1)}`).join(', ')}`);
const half = long.rssSamples.filter(([s]) => s >= longSpec.seconds / 2);
const flat = half.length >= 2 ? (half[half.length - 1]![1] - half[0]![1]) / half[0]![1] : 0;
out.push('', '| row | target | result |', '|---|---|---|');
for (const [spec, r] of results) {
  for (const [what, met] of soakTargets(r, spec.batchSize)) out.push(`| ${spec.name} | ${what} | ${met ? 'met' : 'NOT met'} |`);
}
out.push(`| ${longSpec.name} | RSS flat over the second half (< 5 %: ${(flat * 100).toFixed(1)} %) | ${flat < 0.05 ? 'met' : 'NOT met'} |`);
process.stdout.write(`${out.join('\n')}\n`);
