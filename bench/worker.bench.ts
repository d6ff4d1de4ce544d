/**
 * Round-trip latency and throughput of PREDICT through one worker, against a trivial length-prefixed Python
 * echo over the same socket type (unix), in the same run. One message in flight per connection, as MMS does.
 *
 *   npm run build && node dist/bench/worker.bench.js [--seconds 3] [--body-bytes 64]
 *
 * Rows: baseline echo (4-byte length + payload, payload = the encoded PREDICT frame), the Python worker
 * (noop handler, batch of 1 and of 8), the Node worker (noop handler, batch of 1).
 */

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openModel } from '../src/runtime/model.js';
import { encodePredict, type InferenceRequest } from '../src/runtime/protocol.js';
import { WorkerProcess } from '../src/runtime/worker-process.js';
import { packagePath } from '../src/util/package-info.js';
import { PYTHON_ECHO_SOURCE } from './python-echo.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, 'body-bytes': { type: 'string', default: '64' } } });
const SECONDS = Number(values.seconds);
const BODY_BYTES = Number(values['body-bytes']);

const ECHO_PY = PYTHON_ECHO_SOURCE;

interface Row {
  name: string;
  requests: number;
  seconds: number;
  latenciesUs: number[];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timed(name: string, requestsPerCall: number, call: () => Promise<void>): Promise<Row> {
  // Warm up (JIT, first-call imports in the worker).
  for (let i = 0; i < 200; i++) await call();
  const latenciesUs: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  let calls = 0;
  while (performance.now() < end) {
    const s = performance.now();
    await call();
    latenciesUs.push((performance.now() - s) * 1000);
    calls++;
  }
  return { name, requests: calls * requestsPerCall, seconds: (performance.now() - t0) / 1000, latenciesUs };
}

async function baselineEcho(frame: Buffer): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'mar-bench-'));
  const script = join(dir, 'echo.py');
  const sock = join(dir, 'echo.sock');
  await writeFile(script, ECHO_PY);
  const child = spawn('python3', [script, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const conn: Socket = createConnection({ path: sock });
  conn.setNoDelay(true);
  await new Promise<void>((resolve) => conn.once('connect', () => resolve()));
  const msg = Buffer.alloc(4 + frame.length);
  msg.writeInt32BE(frame.length, 0);
  frame.copy(msg, 4);
  let waiting: (() => void) | null = null;
  let got = 0;
  conn.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got >= msg.length && waiting) {
      got -= msg.length;
      const w = waiting;
      waiting = null;
      w();
    }
  });
  const row = await timed(
    'baseline: length-prefixed Python echo',
    1,
    () =>
      new Promise<void>((resolve) => {
        waiting = resolve;
        conn.write(msg);
      }),
  );
  conn.end();
  await new Promise((r) => child.once('exit', r));
  await rm(dir, { recursive: true, force: true });
  return row;
}

async function throughWorker(name: string, runtime: 'python' | 'node', batch: InferenceRequest[]): Promise<Row> {
  const model = await openModel(packagePath('fixtures', 'handlers', runtime), { modelName: 'bench', handler: 'noop:handle', runtime });
  const worker = await WorkerProcess.start({ id: '1', model, batchSize: batch.length, log: () => {} });
  try {
    return await timed(name, batch.length, async () => {
      const reply = await worker.predict(batch, 10_000);
      if (reply.code !== 200) throw new Error(`unexpected reply ${reply.code} ${reply.message}`);
    });
  } finally {
    await worker.stop();
  }
}

function request(i: number): InferenceRequest {
  return {
    requestId: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
    headers: [
      ['Host', '127.0.0.1:8080'],
      ['Content-Type', 'application/octet-stream'],
    ],
    params: [{ name: 'body', contentType: 'application/octet-stream', value: Buffer.alloc(BODY_BYTES, 0x61) }],
  };
}

const one = [request(0)];
const eight = Array.from({ length: 8 }, (_, i) => request(i));
const rows: Row[] = [];
rows.push(await baselineEcho(encodePredict(one)));
rows.push(await throughWorker('Python worker, noop, batch 1', 'python', one));
rows.push(await throughWorker('Python worker, noop, batch 8', 'python', eight));
rows.push(await throughWorker('Node worker, noop, batch 1', 'node', one));

const base = rows[0]!;
const baseP50 = percentile(
  [...base.latenciesUs].sort((a, b) => a - b),
  50,
);
console.log(
  `\nPREDICT round trips over a unix socket, one in flight, ${SECONDS}s per row, body ${BODY_BYTES} B, node ${process.versions.node}\n`,
);
const header = ['', 'req/s', 'p50 µs', 'p90 µs', 'p99 µs', 'p50 vs echo'];
const table = rows.map((r) => {
  const s = [...r.latenciesUs].sort((a, b) => a - b);
  const p50 = percentile(s, 50);
  return [
    r.name,
    (r.requests / r.seconds).toFixed(0),
    p50.toFixed(1),
    percentile(s, 90).toFixed(1),
    percentile(s, 99).toFixed(1),
    `+${(p50 - baseP50).toFixed(1)}`,
  ];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(fmt(header));
for (const row of table) console.log(fmt(row));
