#!/usr/bin/env node
// `npm run demo`: archive the example models, inspect and verify them, then serve them with model-server on free
// loopback ports, register, predict (one plain request and one batch of concurrent requests) and stop cleanly.
// Everything goes through the real CLIs, as a user would run them.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'out');
const archiverBin = join(root, 'bin', 'model-archiver.js');
const serverBin = join(root, 'bin', 'model-server.js');

const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s) => console.log(`\n${bold(`==> ${s}`)}`);

/** model-archiver for fixtures/models/<name> with its model_handler.py, into out/. */
function archive(name, ...extra) {
  const model = ['--model-name', name, '--model-path', `fixtures/models/${name}`];
  cli(archiverBin, [...model, '--handler', 'model_handler:handle', '--runtime', 'python3', '--export-path', 'out', '--force', ...extra]);
}

function cli(bin, args) {
  const shown = `${bin === archiverBin ? 'model-archiver' : 'model-server'} ${args.join(' ')}`;
  console.log(`$ ${shown.replaceAll(`${root}/`, '')}`);
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${shown} exited with ${r.status}`);
}

async function http(method, url, body, headers = {}) {
  const res = await fetch(url, { method, body, headers });
  const text = await res.text();
  return { status: res.status, text: text.trimEnd() };
}

function startServer(configFile) {
  const child = spawn(process.execPath, [serverBin, 'start', '--config', configFile], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ports = {};
  return new Promise((resolve, reject) => {
    const onLine = (line) => {
      console.log(`  [server] ${line}`);
      const m = /(Inference|Management) API bind to: (\S+)/.exec(line);
      if (m) ports[m[1].toLowerCase()] = m[2].replace(/\/$/, '');
      if (/Model server started/.test(line)) resolve({ child, ...ports });
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.once('exit', (code) => reject(new Error(`model-server exited early with ${code}`)));
  });
}

async function main() {
  mkdirSync(out, { recursive: true });

  step("Archive the example model (the MMS documentation's custom service) and a small numpy iris classifier");
  archive('example');
  archive('iris', '-v', '1.0', '--description', 'Iris softmax classifier (numpy)');

  step('Inspect and verify');
  cli(archiverBin, ['inspect', 'out/iris.mar', '--files']);
  cli(archiverBin, ['verify', 'out/example.mar']);
  cli(archiverBin, ['verify', 'out/iris.mar']);

  step('Local inference, no server: model-server predict');
  cli(serverBin, ['predict', 'out/iris.mar', '--data', '{"features": [6.7, 3.0, 5.2, 2.3]}', '--quiet']);

  step('Start the model server on free loopback ports');
  const configFile = join(out, 'demo-config.properties');
  writeFileSync(
    configFile,
    [
      'inference_address=http://127.0.0.1:0',
      'management_address=http://127.0.0.1:0',
      `model_store=${out}`,
      'default_workers_per_model=1',
      '',
    ].join('\n'),
  );
  const server = await startServer(configFile);
  const exited = new Promise((r) => server.child.once('exit', (code, signal) => r({ code, signal })));
  // Never leave the server behind: not when the demo is interrupted, nor when its output pipe closes (`| head`).
  const stopServer = () => server.child.exitCode === null && server.child.kill('SIGTERM');
  process.once('exit', stopServer);
  const bail = (code) => {
    stopServer();
    process.exit(code);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, () => bail(130));
  process.stdout.on('error', () => bail(1));
  try {
    step('Register the models (Management API)');
    for (const q of [
      'url=example.mar&initial_workers=1&synchronous=true',
      'url=iris.mar&initial_workers=1&batch_size=4&max_batch_delay=200&synchronous=true',
    ]) {
      const r = await http('POST', `${server.management}/models?${q}`);
      console.log(`POST /models?${q}\n  -> ${r.status} ${r.text.replace(/\s+/g, ' ')}`);
    }
    const list = await http('GET', `${server.management}/models`);
    console.log(`GET /models\n  -> ${list.status} ${list.text.replace(/\s+/g, ' ')}`);

    step('One plain prediction');
    const plain = await http('POST', `${server.inference}/predictions/example`, 'hello', { 'content-type': 'text/plain' });
    console.log(`POST /predictions/example  -> ${plain.status} ${plain.text}`);

    step('A batch: 4 concurrent requests to iris (batch_size=4, max_batch_delay=200 ms): the worker gets them as one batch');
    const flowers = [
      [5.1, 3.5, 1.4, 0.2],
      [6.4, 3.2, 4.5, 1.5],
      [6.3, 3.3, 6.0, 2.5],
      [4.9, 3.0, 1.4, 0.2],
    ];
    const answers = await Promise.all(
      flowers.map((f) =>
        http('POST', `${server.inference}/predictions/iris`, JSON.stringify({ features: f }), { 'content-type': 'application/json' }),
      ),
    );
    answers.forEach((a, i) => {
      const parsed = JSON.parse(a.text);
      console.log(`  features ${JSON.stringify(flowers[i])} -> ${a.status} ${parsed.class}  ${JSON.stringify(parsed.probabilities)}`);
    });

    const ping = await http('GET', `${server.inference}/ping`);
    console.log(`GET /ping -> ${ping.status} ${ping.text.replace(/\s+/g, ' ')}`);
    const describe = await http('GET', `${server.management}/models/iris`);
    console.log(`GET /models/iris\n${describe.text.replace(/^/gm, '  ')}`);
  } finally {
    step('Stop the server (SIGTERM: finish in-flight requests, stop workers, clean up)');
    server.child.kill('SIGTERM');
    const { code, signal } = await exited;
    console.log(`model-server exited with ${code ?? signal}`);
    if (code !== 0) process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exitCode = 1;
});
