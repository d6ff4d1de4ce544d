#!/usr/bin/env node
// Runs TorchServe's own API test collections (Postman collections + data files from a pytorch/serve checkout)
// against model-server in TorchServe's dialect, the way TorchServe's ts_scripts/api_utils.py runs them with newman:
// one server per collection with the same config.properties lines, every data row an iteration, every request's
// pm.test assertions checked. Not part of npm test (it needs the checkout; remote-url rows need the network).
//
//   npm run build && node scripts/torchserve-api-suite.js --serve /path/to/pytorch/serve [management inference timeout]
//
// The model store holds fixture archives under the file names of TorchServe's environment.json (mnist.mar,
// squeezenet1_1.mar, ...) with a stub Python handler: the management collection checks status codes only, while
// prediction values (class probabilities) need TorchServe's real pretrained models, which are not built here.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import vm from 'node:vm';
import { createArchive } from '../dist/src/archive/pack.js';
import { startModelServer } from '../dist/src/server/start-server.js';

const { values, positionals } = parseArgs({
  options: { serve: { type: 'string' }, verbose: { type: 'boolean', default: false } },
  allowPositionals: true,
});
if (!values.serve) {
  console.error('usage: node scripts/torchserve-api-suite.js --serve <pytorch/serve checkout> [management] [inference] [timeout]');
  process.exit(2);
}
const TEST_DIR = join(values.serve, 'test');
const POSTMAN = join(TEST_DIR, 'postman');

// TorchServe's ts_scripts/api_utils.py: collection, data file, config.properties lines
const SUITES = {
  management: {
    collection: 'management_api_test_collection.json',
    data: 'management_data.json',
    config: { disable_token_authorization: true, enable_model_api: true },
  },
  inference: {
    collection: 'inference_api_test_collection.json',
    data: 'inference_data.json',
    config: { metrics_mode: 'prometheus', disable_token_authorization: true, enable_model_api: true },
  },
  timeout: {
    collection: 'inference_api_test_collection.json',
    data: 'increased_timeout_inference.json',
    config: { default_response_timeout: 300, metrics_mode: 'prometheus', disable_token_authorization: true, enable_model_api: true },
  },
};

const STUB_HANDLER = `"""Stands in for TorchServe's pretrained models: answers a small JSON object per request."""


def handle(data, context):
    if data is None:
        return None
    return [{"fixture": context.model_name} for _ in data]
`;

/** Fixture archives named like environment.json's mar_path_* values, in a fresh model store. */
async function modelStore(env, dir) {
  const store = join(dir, 'model_store');
  const src = join(dir, 'src');
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'fixture_handler.py'), STUB_HANDLER);
  for (const [key, file] of Object.entries(env)) {
    if (!key.startsWith('mar_path_')) continue;
    const name = file.replace(/\.mar$/, '');
    await createArchive({ modelName: name, handler: 'fixture_handler:handle', modelPath: src, exportPath: store, archiveSha256: false });
  }
  return store;
}

const substitute = (text, vars) =>
  String(text).replace(/\{\{([^}]+)\}\}/g, (m, name) => (vars[name] === undefined ? m : substitute(vars[name], vars)));

/** The request newman would send for one item and one data row. */
function buildRequest(item, vars) {
  const r = item.request;
  const u = r.url;
  let url;
  if (typeof u === 'string') url = substitute(u, vars);
  else {
    const host = (u.host ?? []).map((h) => substitute(h, vars)).join('.');
    const port = u.port ? `:${substitute(u.port, vars)}` : '';
    const path = (u.path ?? []).map((p) => substitute(p, vars)).join('/');
    url = `${substitute(u.protocol ?? 'http', vars)}://${host}${port}/${path}`;
    const query = (u.query ?? []).filter((q) => !q.disabled).map((q) => `${q.key}=${substitute(q.value ?? '', vars)}`);
    if (query.length) url += `${url.includes('?') ? '&' : '?'}${query.join('&')}`;
  }
  let body = null;
  if (r.body?.mode === 'file' && r.body.file?.src) {
    const file = join(TEST_DIR, substitute(r.body.file.src, vars));
    body = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
  } else if (r.body?.mode === 'raw') body = Buffer.from(substitute(r.body.raw ?? '', vars));
  const headers = {};
  for (const h of r.header ?? []) if (!h.disabled) headers[h.key] = substitute(h.value, vars);
  return { method: substitute(r.method, vars).toUpperCase(), url, body, headers };
}

function send({ method, url, body, headers }) {
  return new Promise((resolve) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ code: res.statusCode, body: Buffer.concat(chunks), error: null }));
    });
    req.on('error', (err) => resolve({ code: 0, body: Buffer.alloc(0), error: err }));
    req.end(body ?? undefined);
  });
}

/** The parts of chai's expect the collections use. */
function expect(actual) {
  const fail = (msg) => {
    throw new Error(msg);
  };
  const chain = {
    oneOf: (list) => list.includes(actual) || fail(`expected ${actual} to be one of ${JSON.stringify(list)}`),
    match: (re) => re.test(String(actual)) || fail(`expected the text to match ${re}`),
    get true() {
      return actual === true || fail(`expected ${JSON.stringify(actual)} to be true`);
    },
  };
  chain.to = chain;
  chain.be = chain;
  return chain;
}

/** Runs a test script in a sandbox with pm, _ and the response; returns the failed pm.test names (and script errors). */
function runScript(lines, row, res) {
  const failed = [];
  const text = () => res.body.toString('utf8');
  const response = {
    code: res.code,
    stream: res.body,
    text,
    json: () => JSON.parse(text()),
    to: {
      have: {
        body: (expected) => {
          if (text() !== String(expected)) throw new Error(`expected the body ${JSON.stringify(String(expected))}`);
        },
      },
    },
  };
  const pm = {
    iterationData: { get: (k) => row[k], has: (k) => k in row },
    response,
    expect,
    test: (name, fn) => {
      try {
        fn();
      } catch (err) {
        failed.push(`${name}: ${err.message}`);
      }
    },
  };
  const _ = {
    size: (o) => (Array.isArray(o) ? o.length : Object.keys(o ?? {}).length),
    keys: (o) => Object.keys(o ?? {}),
    isEqual: (a, b) => isDeepStrictEqual(a, b),
  };
  try {
    vm.runInNewContext(lines.join('\n'), { pm, _, Int8Array, Math, JSON, String, Number, Object, Array, console });
  } catch (err) {
    failed.push(`script error: ${err.message}`);
  }
  return failed;
}

async function runSuite(name, suite) {
  const env = Object.fromEntries(JSON.parse(readFileSync(join(POSTMAN, 'environment.json'), 'utf8')).values.map((v) => [v.key, v.value]));
  const collection = JSON.parse(readFileSync(join(POSTMAN, suite.collection), 'utf8'));
  const rows = JSON.parse(readFileSync(join(POSTMAN, suite.data), 'utf8'));
  const dir = await mkdtemp(join(tmpdir(), `ts-api-${name}-`));
  const store = await modelStore(env, dir);
  const lines = [];
  const server = await startModelServer({
    dialect: 'torchserve',
    noConfigSnapshots: true,
    cwd: dir,
    env: {},
    modelStore: store,
    properties: {
      ...suite.config,
      inference_address: 'http://127.0.0.1:0',
      management_address: 'http://127.0.0.1:0',
      metrics_address: 'http://127.0.0.1:0',
    },
    log: (l) => lines.push(l),
    runtimeOptions: { log: (l) => lines.push(l.line), onEvent: () => {} },
  });
  const port = (api) => new URL(server.listeners.find((l) => l.api === api || l.api === 'both').url).port;
  const metrics = server.listeners.find((l) => l.api === 'metrics');
  const vars = { ...env, hostname: '127.0.0.1', 'pred-port': port('inference'), 'mgmt-port': port('management') };
  if (metrics) vars['metric-port'] = new URL(metrics.url).port;
  let passed = 0;
  let total = 0;
  const failures = [];
  try {
    for (const [i, row] of rows.entries()) {
      for (const item of collection.item) {
        const req = buildRequest(item, { ...vars, ...row });
        // the metrics request names localhost:8082 literally; point it at the metrics listener, if there is one
        if (metrics) req.url = req.url.replace('//localhost:8082', `//127.0.0.1:${vars['metric-port']}`);
        const res = await send(req);
        const script = (item.event ?? []).find((e) => e.listen === 'test')?.script.exec ?? [];
        const failed = res.error ? [`request failed: ${res.error.message}`] : runScript(script, row, res);
        total++;
        if (failed.length === 0) passed++;
        else
          failures.push(
            `#${i + 1} ${row.test ?? row.model_name ?? ''} | ${item.name} | ${req.method} ${req.url.replace(/^https?:\/\/[^/]+/, '')} -> ${res.code}: ${failed.join('; ')}`,
          );
        if (values.verbose) console.log(`${failed.length ? 'FAIL' : 'ok  '} ${req.method} ${req.url} -> ${res.code}`);
      }
    }
  } finally {
    await server.stop(2000);
    await rm(dir, { recursive: true, force: true });
  }
  return { passed, total, failures };
}

let exit = 0;
for (const name of positionals.length ? positionals : Object.keys(SUITES)) {
  const suite = SUITES[name];
  if (!suite) {
    console.error(`unknown collection ${name}; use ${Object.keys(SUITES).join(', ')}`);
    process.exit(2);
  }
  const r = await runSuite(name, suite);
  console.log(`${name}: ${r.passed}/${r.total} requests pass`);
  for (const f of r.failures) console.log(`  ${f}`);
  if (r.passed !== r.total) exit = 1;
}
process.exitCode = exit;
