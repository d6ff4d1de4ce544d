/**
 * Cold start in parts, for bench:server (issue 16): node's own start, loading our modules, a worker's spawn to ready
 * (Python and Node), the whole start of `model-server start --models <one model>` to its first answered prediction
 * (Python and Node handler), that first request alone, and a one-shot `model-server predict` of a 1 KiB Python .mar.
 * Each part is the median of `runs` runs (the runs are printed too).
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openModel } from '../src/runtime/model.js';
import { WorkerProcess } from '../src/runtime/worker-process.js';
import { packagePath } from '../src/util/package-info.js';
import { lineWaiter } from './line-waiter.js';
import { withoutExtraCaCerts } from './measure.js';

const SERVER_BIN = packagePath('bin', 'model-server.js');
const ARCHIVER_BIN = packagePath('bin', 'model-archiver.js');
/**
 * What `model-server start` loads before its command runs: the CLI's one-file CommonJS bundle, compiled with its V8
 * code cache, as bin/launch.js does (scripts/build-bundle.js); the server's modules are inside it, initialised on use.
 */
function startPathLoad(): string {
  const launcher = packagePath('bin', 'launch.js');
  const bundle = packagePath('dist', 'bundle', 'model-server.cjs');
  if (!existsSync(bundle)) throw new Error(`no ${bundle}: run npm run build`);
  return `require(${JSON.stringify(launcher)}).compileBundle(${JSON.stringify(bundle)}, true);`;
}

export interface ColdStartParts {
  /** Each value: the runs in ms. */
  nodeStart: number[];
  ourModules: number[];
  pythonWorkerReady: number[];
  nodeWorkerReady: number[];
  pythonTotal: number[];
  pythonFirstRequest: number[];
  nodeTotal: number[];
  nodeFirstRequest: number[];
  predict1KiB: number[];
  /** `node -e ""` with this environment's NODE_EXTRA_CA_CERTS, when it sets one (not part of the rows above). */
  extraCaNodeStart: number[];
}

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** ms from spawn to exit (throws on a non-zero exit). */
function timedRun(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = performance.now();
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) =>
    p.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`)))),
  );
}

/** `model-server start --models name` -> [ms to the first 200, ms of that first request]. */
async function serverColdStart(dir: string, name: string): Promise<[number, number]> {
  const cfg = join(dir, `cold-${name}.properties`);
  await writeFile(
    cfg,
    `inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmodel_store=${join(dir, 'store')}\ndefault_workers_per_model=1\n`,
  );
  const t0 = performance.now();
  const proc = spawn(process.execPath, [SERVER_BIN, 'start', '--config', cfg, '--models', name], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  try {
    const url = /bind to: (\S+)/.exec(await lineWaiter(proc)(/Inference API bind to/))![1]!;
    const t1 = performance.now();
    const res = await fetch(`${url}/predictions/${name}`, { method: 'POST', body: 'x' });
    await res.text();
    const t2 = performance.now();
    if (res.status !== 200) throw new Error(`cold start of ${name}: ${res.status}`);
    return [t2 - t0, t2 - t1];
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
}

async function workerReady(runtime: 'python' | 'node'): Promise<number> {
  const model = await openModel(packagePath('fixtures', 'handlers', runtime), { modelName: 'cold', handler: 'noop:handle', runtime });
  const t0 = performance.now();
  const w = await WorkerProcess.start({ id: '1', model, batchSize: 1, log: () => {} });
  const ms = performance.now() - t0;
  await w.stop();
  return ms;
}

/** Measures every part `runs` times, without NODE_EXTRA_CA_CERTS (measure.ts); `dir` is a scratch directory. */
export async function coldStartParts(dir: string, runs = 3): Promise<ColdStartParts> {
  const extraCaNodeStart: number[] = [];
  if (process.env['NODE_EXTRA_CA_CERTS'] !== undefined) for (let i = 0; i < runs; i++) extraCaNodeStart.push(await timedRun(['-e', '']));
  return { ...(await withoutExtraCaCerts(() => measureParts(dir, runs))), extraCaNodeStart };
}

async function measureParts(dir: string, runs: number): Promise<Omit<ColdStartParts, 'extraCaNodeStart'>> {
  const store = join(dir, 'store');
  for (const [name, runtime, file] of [
    ['coldpy', 'python', 'noop.py'],
    ['coldjs', 'node', 'noop.js'],
  ] as const) {
    await mkdir(join(store, name, 'MAR-INF'), { recursive: true });
    await cp(packagePath('fixtures', 'handlers', runtime, file), join(store, name, file));
    await writeFile(
      join(store, name, 'MAR-INF', 'MANIFEST.json'),
      JSON.stringify({ runtime, model: { modelName: name, handler: 'noop:handle' } }),
    );
  }
  // a 1 KiB Python model: the noop handler and 1 KiB of "weights"
  const src = join(dir, 'tiny-src');
  await mkdir(src, { recursive: true });
  await cp(packagePath('fixtures', 'handlers', 'python', 'noop.py'), join(src, 'noop.py'));
  await writeFile(join(src, 'weights.bin'), Buffer.alloc(1024, 7));
  await timedRun([ARCHIVER_BIN, 'create', '--model-name', 'tiny', '--model-path', src, '--handler', 'noop:handle', '--export-path', dir]);
  const predictEnv = { ...process.env, MAR_CACHE_DIR: join(dir, 'predict-cache') };

  const parts: Omit<ColdStartParts, 'extraCaNodeStart'> = {
    nodeStart: [],
    ourModules: [],
    pythonWorkerReady: [],
    nodeWorkerReady: [],
    pythonTotal: [],
    pythonFirstRequest: [],
    nodeTotal: [],
    nodeFirstRequest: [],
    predict1KiB: [],
  };
  for (let i = 0; i < runs; i++) {
    const node = await timedRun(['-e', '']);
    parts.nodeStart.push(node);
    // what `model-server start` loads before it reads the config: the CLI and the server's modules
    parts.ourModules.push(Math.max(0, (await timedRun(['-e', startPathLoad()])) - node));
    parts.pythonWorkerReady.push(await workerReady('python'));
    parts.nodeWorkerReady.push(await workerReady('node'));
    const [py, pyFirst] = await serverColdStart(dir, 'coldpy');
    parts.pythonTotal.push(py);
    parts.pythonFirstRequest.push(pyFirst);
    const [js, jsFirst] = await serverColdStart(dir, 'coldjs');
    parts.nodeTotal.push(js);
    parts.nodeFirstRequest.push(jsFirst);
    // the first run extracts the archive into the cache; later runs reuse it
    parts.predict1KiB.push(await timedRun([SERVER_BIN, 'predict', join(dir, 'tiny.mar'), '--data', 'x', '--quiet'], predictEnv));
  }
  return parts;
}

/** The table bench:server prints. */
export function coldStartTable(p: ColdStartParts): string {
  const row = (name: string, xs: number[]): string =>
    `| ${name} | ${Math.round(median(xs))} | ${xs.map((x) => Math.round(x)).join(', ')} |`;
  return [
    '| cold start part | median ms | runs ms |',
    '|---|---:|---|',
    row('node start (`node -e ""`, spawn to exit)', p.nodeStart),
    row('our modules (loading the CLI bundle with its code cache, minus node start)', p.ourModules),
    row('Python worker spawn -> LOAD answered (noop.py)', p.pythonWorkerReady),
    row('Node worker spawn -> LOAD answered (noop.js)', p.nodeWorkerReady),
    row('`start --models` Python model: spawn -> first 200', p.pythonTotal),
    row('  of which the first request', p.pythonFirstRequest),
    row('`start --models` Node model: spawn -> first 200', p.nodeTotal),
    row('  of which the first request', p.nodeFirstRequest),
    row('one-shot `predict` of a 1 KiB Python .mar (first run extracts)', p.predict1KiB),
    ...(p.extraCaNodeStart.length > 0
      ? [row("not counted above: node start with this environment's NODE_EXTRA_CA_CERTS", p.extraCaNodeStart)]
      : []),
  ].join('\n');
}
