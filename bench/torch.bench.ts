/**
 * PyTorch serving benchmark (not part of npm test): resnet18 as TorchScript on the CPU, served by the built-in
 * image_classifier handler, against the same work in a bare Python loop measured in the same run.
 *
 *   npm run bench:torch [-- --seconds 10 --rounds 2]
 *
 * The bare loop does what the handler does for each image (decode the JPEG, resize/crop/normalise, stack the batch,
 * run the model under inference_mode, softmax and top 5), with all the cores as torch threads and the workers'
 * OMP_WAIT_POLICY=PASSIVE; a model-only loop (pre-made tensors) and the loop with libgomp's default (spinning) wait
 * policy are printed for information. The server rows: `model-server start` with the model registered
 * with batch_size 1 (2 clients per worker, so one request waits while one runs) and batch_size 8 (dynamic batching,
 * 8 concurrent clients per worker, max_batch_delay 50 ms), with 1 and 2 workers (each worker's torch then gets
 * cores / workers threads). Rounds alternate bare and server runs (the machine may be shared); the table shows the
 * best round of each. Then the issue's targets: server >= 0.95x the bare loop at batch 1 and 8, 2 workers >= 1 worker.
 * Needs torch, torchvision and Pillow for $MAR_TORCH_PYTHON (default /usr/bin/python3, else $MAR_PYTHON).
 */

import type { ChildProcess } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packagePath } from '../src/util/package-info.js';
import { lineWaiter } from './line-waiter.js';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, rounds: { type: 'string', default: '2' } } });
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const PYTHON = process.env['MAR_TORCH_PYTHON'] ?? (process.env['MAR_PYTHON'] || '/usr/bin/python3');
const CORES = availableParallelism();
const IMAGES = ['image_1.jpg', 'image_2.jpg', 'image_3.jpg', 'image_4.jpg'];

// The handler's work, in a plain loop: argv = model, seconds, batch, threads, mode (full | model), images...
const BARE_LOOP = `
import io, json, sys, time
import torch
from PIL import Image
from torchvision import transforms
path, seconds, batch, threads, mode = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
model = torch.jit.load(path).eval()
T = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
blobs = [open(f, "rb").read() for f in sys.argv[6:]]
tensors = [T(Image.open(io.BytesIO(b))) for b in blobs]
def step(i):
    if mode == "full":
        x = torch.stack([T(Image.open(io.BytesIO(blobs[(i + k) % len(blobs)]))) for k in range(batch)])
    else:
        x = torch.stack([tensors[(i + k) % len(tensors)] for k in range(batch)])
    with torch.inference_mode():
        probs, classes = torch.topk(torch.softmax(model(x), dim=1), 5, dim=1)
    probs.tolist(), classes.tolist()
for i in range(3):
    step(i)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    step(n)
    n += batch
print(json.dumps({"images_per_s": n / (time.perf_counter() - start)}))
`;

interface Measure {
  name: string;
  batch: number;
  workers: number;
  imagesPerSec: number;
  p50?: number;
  p99?: number;
  errors?: number;
}

function python(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1', ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${PYTHON} ${args[0]} failed (${code}):\n${err}`))));
  });
}

/** The bare loop in the workers' OpenMP setting (passive waits: launchers.ts), or libgomp's default (spinning). */
async function bareLoop(
  dir: string,
  batch: number,
  mode: 'full' | 'model',
  waitPolicy: 'PASSIVE' | 'default' = 'PASSIVE',
): Promise<number> {
  const script = join(dir, 'bare_loop.py');
  await writeFile(script, BARE_LOOP);
  const out = await python(
    [
      script,
      join(dir, 'image_classifier', 'resnet18.pt'),
      String(SECONDS),
      String(batch),
      String(CORES),
      mode,
      ...IMAGES.map((f) => join(dir, 'image_classifier', 'inputs', f)),
    ],
    waitPolicy === 'PASSIVE' ? { OMP_WAIT_POLICY: 'PASSIVE' } : {},
  );
  return (JSON.parse(out.trim().split('\n').pop()!) as { images_per_s: number }).images_per_s;
}

async function startServer(dir: string): Promise<{ proc: ChildProcess; inference: string; management: string }> {
  const cfg = join(dir, 'config.properties');
  await writeFile(
    cfg,
    `inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmodel_store=${join(dir, 'store')}\npython=${PYTHON}\n`,
  );
  const proc = spawn(process.execPath, [packagePath('bin', 'model-server.js'), 'start', '--config', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  const wait = lineWaiter(proc);
  const inference = /bind to: (\S+)/.exec(await wait(/Inference API bind to/))![1]!;
  const management = /bind to: (\S+)/.exec(await wait(/Management API bind to/))![1]!;
  return { proc, inference, management };
}

async function serverRow(s: { inference: string; management: string }, body: Buffer, batch: number, workers: number): Promise<Measure> {
  const name = `resnet18_b${batch}_w${workers}`;
  const q = new URLSearchParams({
    url: 'resnet18.mar',
    model_name: name,
    batch_size: String(batch),
    max_batch_delay: batch > 1 ? '50' : '0',
    initial_workers: String(workers),
    synchronous: 'true',
  });
  const reg = await fetch(`${s.management}/models?${q}`, { method: 'POST' });
  if (reg.status !== 200) throw new Error(`register ${name}: ${reg.status} ${await reg.text()}`);
  try {
    const connections = (batch > 1 ? 8 : 2) * workers;
    const url = `${s.inference}/predictions/${name}`;
    const first = await fetch(url, { method: 'POST', body: new Uint8Array(body) });
    if (first.status !== 200) throw new Error(`prediction failed: ${first.status} ${await first.text()}`);
    await autocannon({ url, method: 'POST', body, connections, duration: 2 }); // warm up
    const r = await autocannon({ url, method: 'POST', body, connections, duration: SECONDS });
    return {
      name: `server, ${workers} worker${workers > 1 ? 's' : ''}, batch_size ${batch}, ${connections} clients`,
      batch,
      workers,
      imagesPerSec: r.requests.average,
      p50: r.latency.p50,
      p99: r.latency.p99,
      errors: r.non2xx + r.errors + r.timeouts,
    };
  } finally {
    await fetch(`${s.management}/models/${name}`, { method: 'DELETE' });
  }
}

function best(rows: Measure[], name: string): Measure {
  return rows.filter((r) => r.name === name).reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a));
}

async function main(): Promise<void> {
  if (spawnSync(PYTHON, ['-c', 'import torch, torchvision, PIL']).status !== 0) {
    console.log(
      `bench:torch needs torch, torchvision and Pillow for ${PYTHON}: apt-get install python3-torch python3-torchvision python3-pil (or set MAR_TORCH_PYTHON)`,
    );
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'mar-bench-torch-'));
  let server: Awaited<ReturnType<typeof startServer>> | null = null;
  try {
    await python([packagePath('examples', 'build_all.py'), dir, 'image_classifier']);
    const built = join(dir, 'image_classifier');
    const archived = spawnSync(process.execPath, [
      packagePath('bin', 'model-archiver.js'),
      '--model-name',
      'resnet18',
      '--version',
      '1.0',
      '--serialized-file',
      join(built, 'resnet18.pt'),
      '--extra-files',
      join(built, 'index_to_name.json'),
      '--handler',
      'image_classifier',
      '--export-path',
      join(dir, 'store'),
      '-q',
    ]);
    if (archived.status !== 0) throw new Error(`model-archiver failed: ${archived.stderr}`);
    const body = await readFile(join(built, 'inputs', IMAGES[0]!));
    server = await startServer(dir);
    const rows: Measure[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const batch of [1, 8]) {
        const full = await bareLoop(dir, batch, 'full');
        rows.push({ name: `bare Python loop, batch ${batch}, ${CORES} threads`, batch, workers: 0, imagesPerSec: full });
        const model = await bareLoop(dir, batch, 'model');
        rows.push({ name: `bare loop, model only (pre-made tensors), batch ${batch}`, batch, workers: 0, imagesPerSec: model });
        const spinning = await bareLoop(dir, batch, 'full', 'default');
        rows.push({
          name: `bare loop, libgomp's default wait policy (spinning), batch ${batch}`,
          batch,
          workers: 0,
          imagesPerSec: spinning,
        });
        for (const workers of [1, 2]) rows.push(await serverRow(server, body, batch, workers));
      }
      process.stderr.write(`round ${round}/${ROUNDS} done\n`);
      for (const r of rows.slice(-10)) process.stderr.write(`  ${r.name}: ${r.imagesPerSec.toFixed(1)} images/s\n`);
    }

    const names = [...new Set(rows.map((r) => r.name))];
    console.log(
      `\ntorch benchmark: resnet18 TorchScript on ${CORES} cores, ${SECONDS} s per row, best of ${ROUNDS} rounds; ${PYTHON} (Node ${process.version})\n`,
    );
    console.log('| setup | images/s | p50 ms | p99 ms | errors | vs bare loop |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const name of names) {
      const r = best(rows, name);
      const bare = best(rows, `bare Python loop, batch ${r.batch}, ${CORES} threads`).imagesPerSec;
      console.log(
        `| ${r.name} | ${r.imagesPerSec.toFixed(1)} | ${r.p50 ?? ''} | ${r.p99 ?? ''} | ${r.errors ?? ''} | ${((100 * r.imagesPerSec) / bare).toFixed(0)}% |`,
      );
    }
    const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
    console.log('\nissue targets:');
    for (const batch of [1, 8]) {
      const bare = best(rows, `bare Python loop, batch ${batch}, ${CORES} threads`).imagesPerSec;
      const one = rows.filter((r) => r.batch === batch && r.workers === 1);
      const two = rows.filter((r) => r.batch === batch && r.workers === 2);
      const w1 = best(one, one[0]!.name).imagesPerSec;
      const w2 = best(two, two[0]!.name).imagesPerSec;
      console.log(`  batch ${batch}: server (1 worker) >= 0.95x bare loop: ${(w1 / bare).toFixed(2)}x -> ${verdict(w1 >= 0.95 * bare)}`);
      console.log(
        `  batch ${batch}: 2 workers do not lose to 1 (within 5%, the noise of a row): ${w2.toFixed(1)} vs ${w1.toFixed(1)} images/s (${(w2 / w1).toFixed(2)}x) -> ${verdict(w2 >= 0.95 * w1)}`,
      );
    }
  } finally {
    server?.proc.kill('SIGTERM');
    if (server) await new Promise((r) => server!.proc.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
