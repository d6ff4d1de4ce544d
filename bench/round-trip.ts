/**
 * `bench:server -- --round-trip [--rounds 3] [--seconds 10]`: the batch-1 round trip alone (issue 16). The
 * one-in-flight forwarder (node:http -> unix socket -> Python echo) and model-server with the noop Python handler,
 * 1 and 2 workers, take turns each round; per row the medians of req/s and p99, and each process's CPU time per
 * request (user + system, from /proc): the HTTP front end, its Python process(es), and the load generator (this
 * process). When the machine is shared, req/s moves with the neighbours; CPU per request moves much less, and
 * on 2 cores the front end's is what bounds the 1-worker row.
 */

import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packagePath } from '../src/util/package-info.js';
import { median } from './cold-start.js';
import { lineWaiter } from './line-waiter.js';
import { FORWARD_LIMITED_SERVER, PYTHON_ECHO_SOURCE } from './python-echo.js';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

/** user and system CPU time of a process so far, in ms (clock ticks of 10 ms). */
export async function cpuMs(pid: number): Promise<{ user: number; system: number }> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
}

/** The child processes of a process (its workers, the forwarder's echo). */
export async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter(Boolean).map(Number);
}

interface Setup {
  name: string;
  proc: ChildProcess;
  url: string;
  rates: number[];
  p99: number[];
  /** µs per request: the front end's user and system time, its children's total, the load generator's total. */
  user: number[];
  system: number[];
  children: number[];
  client: number[];
}

const setup = (name: string, proc: ChildProcess, url: string): Setup => ({
  name,
  proc,
  url,
  rates: [],
  p99: [],
  user: [],
  system: [],
  children: [],
  client: [],
});

async function startForwarder(dir: string): Promise<Setup> {
  const echo = join(dir, 'echo.py');
  await writeFile(echo, PYTHON_ECHO_SOURCE);
  const proc = spawn(process.execPath, ['-e', FORWARD_LIMITED_SERVER, 'python3', echo, join(dir, 'echo.sock'), '1'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = /PORT (\d+)/.exec(await lineWaiter(proc)(/PORT/))![1];
  return setup('one-in-flight forwarder (node:http -> unix socket -> Python echo)', proc, `http://127.0.0.1:${port}/`);
}

async function startModelServer(dir: string, workers: number): Promise<Setup> {
  const cfg = join(dir, `config-${workers}.properties`);
  await writeFile(cfg, `inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmodel_store=${join(dir, 'store')}\n`);
  const proc = spawn(process.execPath, [packagePath('bin', 'model-server.js'), 'start', '--config', cfg], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  const wait = lineWaiter(proc);
  const inference = /bind to: (\S+)/.exec(await wait(/Inference API bind to/))![1]!;
  const management = /bind to: (\S+)/.exec(await wait(/Management API bind to/))![1]!;
  const reg = await fetch(`${management}/models?url=py&model_name=noop&handler=noop:handle&initial_workers=${workers}&synchronous=true`, {
    method: 'POST',
  });
  if (reg.status !== 200) throw new Error(`register failed: ${await reg.text()}`);
  return setup(`model-server, noop.py, ${workers} worker${workers > 1 ? 's' : ''}`, proc, `${inference}/predictions/noop`);
}

async function measure(s: Setup, seconds: number, connections: number): Promise<void> {
  const run = (duration: number): Promise<AutocannonResult> => autocannon({ url: s.url, method: 'POST', body: 'x', connections, duration });
  await run(1); // warm-up: JIT, first batches
  const pid = s.proc.pid!;
  const kids = await childrenOf(pid);
  const [front0, kids0, client0] = [await cpuMs(pid), await Promise.all(kids.map(cpuMs)), process.cpuUsage()];
  const r = await run(seconds);
  const [front1, kids1, client1] = [await cpuMs(pid), await Promise.all(kids.map(cpuMs)), process.cpuUsage(client0)];
  const n = r.requests.total;
  const kidsMs = (xs: Array<{ user: number; system: number }>): number => xs.reduce((sum, c) => sum + c.user + c.system, 0);
  s.rates.push(r.requests.average);
  s.p99.push(r.latency.p99);
  s.user.push((1000 * (front1.user - front0.user)) / n);
  s.system.push((1000 * (front1.system - front0.system)) / n);
  s.children.push((1000 * (kidsMs(kids1) - kidsMs(kids0))) / n);
  s.client.push((client1.user + client1.system) / n);
  const errors = r.non2xx + r.errors + r.timeouts;
  process.stderr.write(
    `${s.name}: ${Math.round(r.requests.average)} req/s, p99 ${r.latency.p99} ms${errors ? `, ${errors} errors` : ''}\n`,
  );
}

/** Runs the rounds and prints the table. */
export async function roundTrip(opts: { seconds: number; connections: number; rounds: number }): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mar-round-trip-'));
  const setups: Setup[] = [];
  try {
    await cp(packagePath('fixtures', 'handlers', 'python'), join(dir, 'store', 'py'), { recursive: true });
    setups.push(await startForwarder(dir), await startModelServer(dir, 1), await startModelServer(dir, 2));
    for (let round = 0; round < opts.rounds; round++) {
      for (const s of setups) await measure(s, opts.seconds, opts.connections);
    }
    const base = median(setups[0]!.rates);
    const one = median(setups[1]!.rates);
    const f = (xs: number[]): string => median(xs).toFixed(1);
    console.log(
      `\nbatch-1 round trip: ${opts.connections} connections, ${opts.rounds} rounds x ${opts.seconds} s, POST 1-byte body (Node ${process.version});` +
        ' medians; CPU in µs per request\n',
    );
    console.log('| setup | req/s (rounds) | vs forwarder | p99 ms | front end user | front end system | its Python | load generator |');
    console.log('|---|---|---:|---:|---:|---:|---:|---:|');
    for (const s of setups) {
      console.log(
        `| ${s.name} | ${Math.round(median(s.rates))} (${s.rates.map(Math.round).join(', ')}) | ${(median(s.rates) / base).toFixed(2)}x | ` +
          `${median(s.p99)} | ${f(s.user)} | ${f(s.system)} | ${f(s.children)} | ${f(s.client)} |`,
      );
    }
    console.log(`\n2 workers vs 1: ${(median(setups[2]!.rates) / one).toFixed(2)}x`);
  } finally {
    for (const s of setups) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGTERM');
    await Promise.all(setups.map((s) => (s.proc.exitCode === null ? new Promise((r) => s.proc.once('exit', r)) : null)));
    await rm(dir, { recursive: true, force: true });
  }
}
