/**
 * HTTP serving benchmark (not part of npm test). autocannon, 32 connections, POST, each row in the same run:
 *
 *   npm run build && node dist/bench/server.bench.js [--seconds 10] [--connections 32]
 *
 * Rows: a bare node:http "OK" server; a minimal node:http server forwarding each request over one unix socket
 * to a trivial Python echo process (4-byte length framing), then the same with one and with two requests in flight
 * (informational: the ceiling MMS's one-batch-per-worker rule leaves, and what one batch held ahead would allow); `model-server` with the noop Python handler and 1
 * worker (by /predictions, then by an Open Inference Protocol v2 JSON infer), then 2 workers; the Node noop handler with 1 worker; noop with batch_size 8 (informational); slow.py (fixed 2 ms per batch) with batch_size 1 and 8 (1 worker each). Then cold start
 * (process start to the first successful prediction) and frontend RSS with one model loaded; the cold start in parts
 * (node start, our modules, worker spawn to ready, first request) and a one-shot predict of a 1 KiB model (cold-start.ts);
 * then the issues' targets, met or not.
 * Every server runs in its own process; autocannon runs in this one.
 *
 * `--round-trip [--rounds 3]` runs only the batch-1 round trip instead (round-trip.ts): the one-in-flight forwarder
 * and model-server with 1 and 2 noop.py workers, taking turns each round, with each process's CPU time per request.
 *
 * `--metrics [--rounds 3]` runs only the cost of TorchServe's metrics and token checks instead (issue 12's 5% bound): the
 * noop.py, 1 worker, batch_size 1 row without metrics (MMS mode), with metrics_mode=prometheus (scraped every second
 * during the load), with metrics_mode=log, with token auth and Prometheus metrics (--ts-config: the token checks' own
 * cost), and with TorchServe's defaults (--ts-config: token auth, log metrics), the servers taking turns each round;
 * medians and ratios to the row without metrics, and the bound met or not.
 */

import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packagePath } from '../src/util/package-info.js';
import { coldStartParts, coldStartTable, median } from './cold-start.js';
import { lineWaiter } from './line-waiter.js';
import { withoutExtraCaCerts } from './measure.js';
import { FORWARD_LIMITED_SERVER, PYTHON_ECHO_SOURCE } from './python-echo.js';
import { childrenOf, cpuMs as processCpuMs, roundTrip } from './round-trip.js';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    metrics: { type: 'boolean', default: false },
    'round-trip': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
  },
});
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const SERVER_BIN = packagePath('bin', 'model-server.js');

const V2_ROW = 'model-server, noop.py, 1 worker, OIP v2 JSON infer (1 INT32 tensor)';
const V2_BODY = JSON.stringify({ id: '1', inputs: [{ name: 'x', shape: [1, 4], datatype: 'INT32', data: [[1, 2, 3, 4]] }] });

const BARE_SERVER = `
const http = require('http');
const s = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('OK')); });
s.listen(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));
`;

const ECHO_PY = PYTHON_ECHO_SOURCE;

// node:http -> one unix socket -> Python echo; replies come back in order, so a FIFO of responses suffices
const FORWARD_SERVER = `
const http = require('http'), net = require('net'), { spawn } = require('child_process');
const [py, echoFile, sockPath] = process.argv.slice(1);
const echo = spawn(py, [echoFile, sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
echo.stdout.once('data', () => {
  const sock = net.connect(sockPath);
  const pending = [];
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 4) {
      const n = buf.readInt32BE(0);
      if (buf.length < 4 + n) break;
      pending.shift().end(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
  });
  const s = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const head = Buffer.alloc(4); head.writeInt32BE(body.length);
      pending.push(res);
      sock.write(Buffer.concat([head, body]));
    });
  });
  s.listen(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));
});
process.on('SIGTERM', () => { echo.kill(); process.exit(0); });
`;

interface Row {
  name: string;
  reqPerSec: number;
  /** Requests answered in the measured run. */
  total: number;
  p50: number;
  p99: number;
  errors: number;
}

const children: ChildProcess[] = [];

async function load(name: string, url: string, body = 'x', headers: Record<string, string> = {}): Promise<Row> {
  // warm up (JIT, first batches)
  await autocannon({ url, method: 'POST', body, headers, connections: CONNECTIONS, duration: 1 });
  const r = await autocannon({ url, method: 'POST', body, headers, connections: CONNECTIONS, duration: SECONDS });
  const row = {
    name,
    reqPerSec: r.requests.average,
    total: r.requests.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.non2xx + r.errors + r.timeouts,
  };
  process.stderr.write(`${name}: ${Math.round(row.reqPerSec)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, errors ${row.errors}\n`);
  return row;
}

async function post(url: string, body?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', ...(body !== undefined ? { body } : {}) });
  return { status: res.status, text: await res.text() };
}

/** CPU time a process has used so far (user + system, ms), from /proc. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  // utime and stime (fields 14 and 15 of stat; 12 and 13 after the command) are in clock ticks of 10 ms
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
}

async function startModelServer(
  dir: string,
  extraProps: string,
  args: string[] = [],
  /** `--ts-config` reads the file in TorchServe's dialect. */
  configFlag: '--config' | '--ts-config' = '--config',
): Promise<{
  proc: ChildProcess;
  inference: string;
  management: string;
  wait: (re: RegExp) => Promise<string>;
}> {
  const cfg = join(dir, `config-${children.length}.properties`);
  await writeFile(
    cfg,
    `inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmodel_store=${join(dir, 'store')}\n${extraProps}`,
  );
  const proc = spawn(process.execPath, [SERVER_BIN, 'start', configFlag, cfg, ...args], {
    // the TorchServe dialect writes key_file.json into the working directory
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  children.push(proc);
  const wait = lineWaiter(proc);
  const inference = /bind to: (\S+)/.exec(await wait(/Inference API bind to/))![1]!;
  const management = /bind to: (\S+)/.exec(await wait(/Management API bind to/))![1]!;
  return { proc, inference, management, wait };
}

/** `--metrics`: noop.py batch 1 without TorchServe metrics, with metrics_mode=prometheus (scraped each second), with log. */
async function metricsCost(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mar-metrics-bench-'));
  try {
    await cp(packagePath('fixtures', 'handlers', 'python'), join(dir, 'store', 'py'), { recursive: true });
    const setups: Array<{ name: string; props: string; flag?: '--ts-config' }> = [
      { name: 'no metrics (MMS mode)', props: '' },
      { name: 'metrics_mode=prometheus, scraped every 1 s', props: 'metrics_address=http://127.0.0.1:0\nmetrics_mode=prometheus\n' },
      { name: 'metrics_mode=log', props: `metrics_address=http://127.0.0.1:0\nmetrics_mode=log\nmetrics_location=${join(dir, 'logs')}\n` },
      // token authorization alone (Prometheus metrics cost ~nothing): a Bearer key checked per request
      {
        name: '--ts-config: token auth + metrics_mode=prometheus',
        props: `metrics_address=http://127.0.0.1:0\nmetrics_mode=prometheus\nenable_model_api=true\n`,
        flag: '--ts-config',
      },
      // TorchServe's defaults: its dialect, token authorization on (a Bearer key checked per request), log metrics
      {
        name: '--ts-config: token auth + metrics_mode=log',
        props: `metrics_address=http://127.0.0.1:0\nenable_model_api=true\nmetrics_location=${join(dir, 'ts-logs')}\n`,
        flag: '--ts-config',
      },
    ];
    const servers = [];
    for (const setup of setups) {
      const s = await startModelServer(dir, setup.props, [], setup.flag);
      const metrics = setup.props === '' ? null : /bind to: (\S+)/.exec(await s.wait(/Metrics API bind to/))![1]!;
      let headers: Record<string, string> = {};
      if (setup.flag === '--ts-config') {
        const keys = JSON.parse(await readFile(join(dir, 'key_file.json'), 'utf8')) as Record<string, { key: string }>;
        headers = { authorization: `Bearer ${keys['inference']!.key}` };
        const res = await fetch(`${s.management}/models?url=py&model_name=noop&handler=noop:handle&initial_workers=1`, {
          method: 'POST',
          headers: { authorization: `Bearer ${keys['management']!.key}` },
        });
        if (res.status !== 200) throw new Error(`register failed: ${await res.text()}`);
      } else {
        const reg = await post(`${s.management}/models?url=py&model_name=noop&handler=noop:handle&initial_workers=1`);
        if (reg.status !== 200) throw new Error(`register failed: ${reg.text}`);
      }
      servers.push({ ...setup, ...s, metrics, headers, rates: [] as number[], cpuUs: [] as number[] });
    }
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const s of servers) {
        const scraping = s.metrics !== null && s.name.includes('prometheus');
        const timer = scraping ? setInterval(() => void fetch(`${s.metrics}/metrics`).then((r) => r.text()), 1000) : null;
        try {
          const cpu0 = await cpuMs(s.proc.pid!);
          const row = await load(`${s.name}, round ${round + 1}`, `${s.inference}/predictions/noop`, 'x', s.headers);
          // the warm-up second is in the CPU time too: divide by its requests as well (about one more second's worth)
          s.cpuUs.push((1000 * ((await cpuMs(s.proc.pid!)) - cpu0)) / (row.total * (1 + 1 / SECONDS)));
          s.rates.push(row.reqPerSec);
        } finally {
          if (timer) clearInterval(timer);
        }
      }
    }
    const base = median(servers[0]!.rates);
    console.log(
      `\nmetrics cost: noop.py, 1 worker, batch_size 1, ${CONNECTIONS} connections, ${values.rounds} x ${SECONDS} s (Node ${process.version})\n`,
    );
    const baseCpu = median(servers[0]!.cpuUs);
    console.log('| setup | req/s per round | median | vs no metrics | frontend CPU µs/request (median) | vs no metrics |');
    console.log('|---|---|---:|---:|---:|---:|');
    for (const s of servers) {
      const m = median(s.rates);
      const c = median(s.cpuUs);
      console.log(
        `| ${s.name} | ${s.rates.map(Math.round).join(', ')} | ${Math.round(m)} | ${((100 * m) / base).toFixed(1)}% | ` +
          `${c.toFixed(1)} | +${(c - baseCpu).toFixed(1)} µs |`,
      );
    }
    // req/s at saturation moves ~10% between rounds on 2 shared cores; CPU per request at a fixed rate below it is steadier
    const FIXED_RATE = 5000;
    const cpu = new Map(servers.map((s) => [s, { front: [] as number[], workers: [] as number[] }]));
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const s of servers) {
        const pid = s.proc.pid!;
        const kids = await childrenOf(pid);
        const total = async (): Promise<[number, number]> => {
          const f = await processCpuMs(pid);
          const k = await Promise.all(kids.map(processCpuMs));
          return [f.user + f.system, k.reduce((sum, c) => sum + c.user + c.system, 0)];
        };
        const [f0, k0] = await total();
        const r = await autocannon({
          url: `${s.inference}/predictions/noop`,
          method: 'POST',
          body: 'x',
          headers: s.headers,
          connections: CONNECTIONS,
          overallRate: FIXED_RATE,
          duration: 5,
        });
        const [f1, k1] = await total();
        cpu.get(s)!.front.push((1000 * (f1 - f0)) / r.requests.total);
        cpu.get(s)!.workers.push((1000 * (k1 - k0)) / r.requests.total);
      }
    }
    const baseCpuAt = median(cpu.get(servers[0]!)!.front) + median(cpu.get(servers[0]!)!.workers);
    console.log(`\nCPU per request at a fixed ${FIXED_RATE} req/s (${values.rounds} x 5 s, medians): frontend and worker processes`);
    console.log('| setup | frontend µs | worker µs | total µs | vs no metrics |');
    console.log('|---|---:|---:|---:|---:|');
    for (const s of servers) {
      const f = median(cpu.get(s)!.front);
      const w = median(cpu.get(s)!.workers);
      console.log(
        `| ${s.name} | ${f.toFixed(1)} | ${w.toFixed(1)} | ${(f + w).toFixed(1)} | +${(f + w - baseCpuAt).toFixed(1)} µs (${((100 * (f + w - baseCpuAt)) / baseCpuAt).toFixed(1)}%) |`,
      );
    }
    console.log('\nissue 12 target: token checks and metrics cost at most 5% of the batch-1 req/s');
    for (const s of servers.slice(1)) {
      const ratio = median(s.rates) / base;
      console.log(`  ${s.name}: ${(100 * ratio).toFixed(1)}% -> ${ratio >= 0.95 ? 'met' : 'NOT met'}`);
    }
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mar-server-bench-'));
  const rows: Row[] = [];
  try {
    await cp(packagePath('fixtures', 'handlers', 'python'), join(dir, 'store', 'py'), { recursive: true });
    await cp(packagePath('fixtures', 'handlers', 'node'), join(dir, 'store', 'node'), { recursive: true });
    // a model directory with a manifest for startup loading (cold start)
    await mkdir(join(dir, 'store', 'noop', 'MAR-INF'), { recursive: true });
    await cp(packagePath('fixtures', 'handlers', 'python', 'noop.py'), join(dir, 'store', 'noop', 'noop.py'));
    await writeFile(
      join(dir, 'store', 'noop', 'MAR-INF', 'MANIFEST.json'),
      JSON.stringify({ runtime: 'python', model: { modelName: 'noop', handler: 'noop:handle' } }),
    );

    // 1. bare node:http
    const bare = spawn(process.execPath, ['-e', BARE_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(bare);
    const barePort = /PORT (\d+)/.exec(await lineWaiter(bare)(/PORT/))![1];
    rows.push(await load('bare node:http "OK"', `http://127.0.0.1:${barePort}/`));
    bare.kill();

    // 2. node:http -> unix socket -> Python echo
    const echoFile = join(dir, 'echo.py');
    await writeFile(echoFile, ECHO_PY);
    const fwd = spawn(process.execPath, ['-e', FORWARD_SERVER, 'python3', echoFile, join(dir, 'echo.sock')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(fwd);
    const fwdPort = /PORT (\d+)/.exec(await lineWaiter(fwd)(/PORT/))![1];
    rows.push(await load('node:http -> unix socket -> Python echo', `http://127.0.0.1:${fwdPort}/`));
    fwd.kill('SIGTERM');
    await new Promise((r) => fwd.once('exit', r));
    for (const [limit, label] of [
      [1, 'same, one request in flight (MMS: one batch per worker)'],
      [2, 'same, two requests in flight (informational)'],
    ] as const) {
      const limited = spawn(
        process.execPath,
        ['-e', FORWARD_LIMITED_SERVER, 'python3', echoFile, join(dir, `echo-${limit}.sock`), String(limit)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      children.push(limited);
      const limitedPort = /PORT (\d+)/.exec(await lineWaiter(limited)(/PORT/))![1];
      rows.push(await load(label, `http://127.0.0.1:${limitedPort}/`));
      limited.kill('SIGTERM');
      await new Promise((r) => limited.once('exit', r));
    }

    // 3. model-server, noop Python handler, 1 then 2 workers
    const s = await startModelServer(dir, '');
    const reg = await post(`${s.management}/models?url=py&model_name=noop&handler=noop:handle&initial_workers=1`);
    if (reg.status !== 200) throw new Error(`register failed: ${reg.text}`);
    rows.push(await load('model-server, noop.py, 1 worker', `${s.inference}/predictions/noop`));
    // The same model and worker through the Open Inference Protocol: a one-tensor JSON infer (parsed, checked, passed
    // to the handler as TorchServe's kservev2 envelope does, its output made a tensor again)
    rows.push(await load(V2_ROW, `${s.inference}/v2/models/noop/infer`, V2_BODY, { 'content-type': 'application/json' }));
    const scaled = await fetch(`${s.management}/models/noop?min_worker=2&synchronous=true`, { method: 'PUT' });
    if (scaled.status !== 200) throw new Error(`scale failed: ${await scaled.text()}`);
    rows.push(await load('model-server, noop.py, 2 workers', `${s.inference}/predictions/noop`));
    const rssLoaded = await rssMb(s.proc.pid!);
    const js = await post(`${s.management}/models?url=node&model_name=jsnoop&handler=noop:handle&runtime=node&initial_workers=1`);
    if (js.status !== 200) throw new Error(`register failed: ${js.text}`);
    rows.push(await load('model-server, noop.js (Node worker), 1 worker', `${s.inference}/predictions/jsnoop`));
    await fetch(`${s.management}/models/jsnoop`, { method: 'DELETE' });
    await fetch(`${s.management}/models/noop?min_worker=1&synchronous=true`, { method: 'PUT' });
    // Informational: the same handler and worker when the aggregator may batch what queued up while the worker
    // was busy (max_batch_delay 0 = never wait for more). This is how one MMS worker gets throughput.
    const nb = await post(
      `${s.management}/models?url=py&model_name=noopb8&handler=noop:handle&initial_workers=1&batch_size=8&max_batch_delay=0`,
    );
    if (nb.status !== 200) throw new Error(`register failed: ${nb.text}`);
    rows.push(
      await load('model-server, noop.py, 1 worker, batch_size 8, max_batch_delay 0 (informational)', `${s.inference}/predictions/noopb8`),
    );
    await fetch(`${s.management}/models/noopb8`, { method: 'DELETE' });
    const rssPeak = await rssMb(s.proc.pid!, 'VmHWM');

    // 4. batching: fixed 2 ms per batch
    for (const batch of [1, 8]) {
      const r = await post(
        `${s.management}/models?url=py&model_name=slow${batch}&handler=slow:handle&initial_workers=1&batch_size=${batch}&max_batch_delay=10`,
      );
      if (r.status !== 200) throw new Error(`register failed: ${r.text}`);
      rows.push(await load(`model-server, slow.py (2 ms/batch), batch_size ${batch}`, `${s.inference}/predictions/slow${batch}`));
    }
    s.proc.kill('SIGTERM');
    await new Promise((r) => s.proc.once('exit', r));

    // 4b. TorchServe dialect with token authorization: every request carries and is checked for a Bearer key
    const ts = await startModelServer(dir, 'metrics_address=http://127.0.0.1:0\nenable_model_api=true\n', [], '--ts-config');
    const keys = JSON.parse(await readFile(join(dir, 'key_file.json'), 'utf8')) as Record<string, { key: string }>;
    const tsReg = await fetch(`${ts.management}/models?url=py&model_name=noop&handler=noop:handle&initial_workers=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys['management']!.key}` },
    });
    if (tsReg.status !== 200) throw new Error(`register failed: ${await tsReg.text()}`);
    rows.push(
      await load('model-server --ts-config (token auth), noop.py, 1 worker', `${ts.inference}/predictions/noop`, 'x', {
        authorization: `Bearer ${keys['inference']!.key}`,
      }),
    );
    ts.proc.kill('SIGTERM');
    await new Promise((r) => ts.proc.once('exit', r));

    // 5. cold start: process start -> first successful prediction (startup model, 1 worker)
    const colds: number[] = [];
    let rssIdle = 0;
    // without the sandbox's NODE_EXTRA_CA_CERTS, as the parts below (cold-start.ts says why)
    await withoutExtraCaCerts(async () => {
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const c = await startModelServer(dir, 'default_workers_per_model=1\n', ['--models', 'noop']);
        const first = await post(`${c.inference}/predictions/noop`, 'x');
        const ms = performance.now() - t0;
        if (first.status !== 200) throw new Error(`cold start prediction failed: ${first.text}`);
        colds.push(ms);
        if (i === 0) rssIdle = await rssMb(c.proc.pid!);
        c.proc.kill('SIGTERM');
        await new Promise((r) => c.proc.once('exit', r));
      }
    });

    // 5b. cold start in parts, and one-shot predict (issue 16)
    const parts = await coldStartParts(dir);

    const base = rows[1]!.reqPerSec;
    console.log(`\nserver benchmark: ${CONNECTIONS} connections, ${SECONDS} s per row, POST 1-byte body (Node ${process.version})\n`);
    console.log('| setup | req/s | p50 ms | p99 ms | errors | vs forwarding |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      console.log(
        `| ${r.name} | ${Math.round(r.reqPerSec)} | ${r.p50} | ${r.p99} | ${r.errors} | ${((100 * r.reqPerSec) / base).toFixed(0)}% |`,
      );
    }
    const b1 = rows.find((r) => r.name.endsWith('batch_size 1'))!.reqPerSec;
    const b8 = rows.find((r) => r.name.endsWith('batch_size 8'))!.reqPerSec;
    console.log(`\nbatch_size 8 vs 1 (2 ms per batch): ${(b8 / b1).toFixed(1)}x`);
    console.log(`cold start (spawn -> first 200), 3 runs: ${colds.map((c) => `${Math.round(c)} ms`).join(', ')}`);
    console.log(
      `frontend RSS: ${rssIdle.toFixed(1)} MB with one model loaded (idle), ${rssLoaded.toFixed(1)} MB after the load runs, ` +
        `peak ${rssPeak.toFixed(1)} MB (V8's young generation grows to 32 MB under load; NODE_OPTIONS=--max-semi-space-size=2 caps it)`,
    );
    // The issue's targets, for the 1-worker noop row. Under one batch in flight per worker, every request of a
    // batch_size 1 model is a full frontend -> worker -> frontend round trip: the one-in-flight forwarder row is
    // that hop's ceiling on this machine. With N closed-loop connections the mean latency is N / throughput
    // (Little's law), so p99 < 3 ms needs well over N / 3 ms of throughput.
    const one = rows.find((r) => r.name === 'model-server, noop.py, 1 worker')!;
    const ceiling = rows[2]!.reqPerSec;
    const twoInFlight = rows[3]!.reqPerSec;
    const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
    console.log('\nissue targets (1 worker, noop.py, batch_size 1):');
    console.log(
      `  req/s >= 75% of forwarding: ${((100 * one.reqPerSec) / base).toFixed(0)}% -> ${verdict(one.reqPerSec >= 0.75 * base)}` +
        ` (one-in-flight ceiling here: ${((100 * ceiling) / base).toFixed(0)}%, two in flight: ${((100 * twoInFlight) / base).toFixed(0)}%;` +
        ` we reach ${((100 * one.reqPerSec) / ceiling).toFixed(0)}% of the one-in-flight ceiling)`,
    );
    console.log(
      `  p99 < 3 ms: ${one.p99} ms -> ${verdict(one.p99 < 3)} (mean latency at ${CONNECTIONS} connections: ` +
        `${((1000 * CONNECTIONS) / one.reqPerSec).toFixed(1)} ms = connections / throughput)`,
    );
    console.log(`  batch_size 8 >= 6x batch_size 1: ${(b8 / b1).toFixed(1)}x -> ${verdict(b8 / b1 >= 6)}`);
    const v2 = rows.find((r) => r.name === V2_ROW)!;
    console.log(
      `  OIP v2 JSON infer >= 0.8x /predictions (issue 13): ${(v2.reqPerSec / one.reqPerSec).toFixed(2)}x -> ${verdict(v2.reqPerSec >= 0.8 * one.reqPerSec)}`,
    );
    const coldMax = Math.max(...colds);
    console.log(`  cold start < 0.3 s: worst of 3 ${Math.round(coldMax)} ms -> ${verdict(coldMax < 300)}`);
    console.log(`\ncold start in parts (3 runs each):\n\n${coldStartTable(parts)}`);
    const one1 = rows[2]!;
    const two = rows.find((r) => r.name === 'model-server, noop.py, 2 workers')!;
    const [coldPy, coldJs, oneShot] = [median(parts.pythonTotal), median(parts.nodeTotal), median(parts.predict1KiB)];
    console.log('\nissue 16 targets:');
    console.log(
      `  1 worker req/s >= 0.8x the one-in-flight forwarder: ${(one.reqPerSec / one1.reqPerSec).toFixed(2)}x -> ${verdict(one.reqPerSec >= 0.8 * one1.reqPerSec)}`,
    );
    console.log(`  1 worker p99 <= 1.5x the forwarder's: ${one.p99} vs ${one1.p99} ms -> ${verdict(one.p99 <= 1.5 * one1.p99)}`);
    console.log(
      `  2 workers >= 1.2x 1 worker: ${(two.reqPerSec / one.reqPerSec).toFixed(2)}x -> ${verdict(two.reqPerSec >= 1.2 * one.reqPerSec)}`,
    );
    console.log(`  cold start, Python handler <= 150 ms: median ${Math.round(coldPy)} ms -> ${verdict(coldPy <= 150)}`);
    console.log(`  cold start, Node handler <= 100 ms: median ${Math.round(coldJs)} ms -> ${verdict(coldJs <= 100)}`);
    console.log(`  one-shot predict of a 1 KiB Python model <= 150 ms: median ${Math.round(oneShot)} ms -> ${verdict(oneShot <= 150)}`);
    console.log(`  frontend RSS < 80 MB with one model loaded: ${rssIdle.toFixed(1)} MB idle -> ${verdict(rssIdle < 80)}`);
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

if (values.metrics) await metricsCost();
else if (values['round-trip']) await roundTrip({ seconds: SECONDS, connections: CONNECTIONS, rounds: Number(values.rounds) });
else await main();
