import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { describeFsError, MarError } from '../../errors.js';
import type { PredictOutcome } from '../../runtime/predict.js';
import { takeEarlyPredict } from '../early-spawn.js';

interface PredictOptions {
  json?: boolean;
  contentType?: string;
  handler?: string;
  modelName?: string;
  runtime?: string;
  python?: string;
  batchSize?: number;
  timeout?: number;
  header: Array<[string, string]>;
  quiet?: boolean;
  cacheDir?: string;
}

/** One input in command-line order: a file (`--input`) or a literal (`--data`). */
type InputSource = { kind: 'file'; path: string } | { kind: 'data'; text: string };

interface Input {
  label: string;
  contentType: string;
  value: Buffer;
}

const EXTENSION_TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.txt': 'text/plain',
  '.csv': 'text/plain',
};

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer.`);
    return n;
  };
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('timeout must be a number of seconds > 0.');
  return n;
}

function parseHeader(v: string, previous: Array<[string, string]>): Array<[string, string]> {
  const i = v.indexOf(':');
  const name = i > 0 ? v.slice(0, i).trim() : '';
  if (!name || /\s/.test(name)) throw new InvalidArgumentError(`expected 'Name: value', got '${v}'.`);
  return [...previous, [name, v.slice(i + 1).trim()]];
}

function dataContentType(text: string): string {
  try {
    JSON.parse(text);
    return 'application/json';
  } catch {
    return 'text/plain';
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function readInputs(sources: readonly InputSource[], contentType: string | undefined): Promise<Input[]> {
  const inputs: Input[] = [];
  for (const s of sources) {
    if (s.kind === 'data') {
      inputs.push({ label: '--data', contentType: contentType ?? dataContentType(s.text), value: Buffer.from(s.text, 'utf8') });
      continue;
    }
    if (s.path === '-') {
      inputs.push({ label: 'stdin', contentType: contentType ?? 'application/octet-stream', value: await readStdin() });
      continue;
    }
    let value: Buffer;
    try {
      value = await readFile(s.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'INPUT_NOT_FOUND' : 'INPUT_INVALID';
      throw new MarError(code, `cannot read input file ${s.path}: ${describeFsError(err)}`, { cause: err });
    }
    const type = contentType ?? EXTENSION_TYPES[extname(s.path).toLowerCase()] ?? 'application/octet-stream';
    inputs.push({ label: s.path, contentType: type, value });
  }
  return inputs;
}

/** Body as UTF-8 text when it decodes cleanly, else base64. */
function bodyJson(body: Buffer): { body: string; encoding?: 'base64' } {
  const text = body.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(body)) return { body: text };
  return { body: body.toString('base64'), encoding: 'base64' };
}

function resultJson(r: PredictOutcome): Record<string, unknown> {
  if (!r.ok) return { status: r.status, error: r.error.message };
  const p = r.result;
  return {
    status: p.statusCode,
    reasonPhrase: p.reasonPhrase,
    headers: Object.fromEntries(p.headers),
    contentType: p.contentType,
    ...bodyJson(p.body),
  };
}

/**
 * Runs `fn` with SIGINT/SIGTERM turned into process.exit: killed by a signal with no handler, Node skips its 'exit'
 * hooks, which SIGKILL the workers (a busy one outlived us, reparented to init) and remove their socket dirs and
 * the extracted archive.
 */
async function exitOnSignal(fn: () => Promise<void>): Promise<void> {
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`error: interrupted by ${signal}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await fn();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function runPredict(source: string, opts: PredictOptions, sources: readonly InputSource[]): Promise<void> {
  if (sources.length === 0) throw new MarError('USAGE', 'nothing to predict: give at least one --input FILE or --data STRING');
  const inputs = await readInputs(sources, opts.contentType);
  // the workers the process's early entry (early-spawn.ts) spawned for this same run, if it did
  const prespawned = await takeEarlyPredict({
    model: source,
    runtime: opts.runtime,
    python: opts.python,
    batchSize: opts.batchSize,
    timeout: opts.timeout,
    cacheDir: opts.cacheDir,
    sizes: inputs.map((i) => i.value.length),
  });
  // loaded here: `model-server start` and `cache` do not pay for the runtime's modules before their own work
  const { predict } = await import('../../runtime/predict.js');
  const results = await predict(
    source,
    inputs.map((i) => ({ body: i.value, contentType: i.contentType })),
    {
      ...(opts.modelName !== undefined ? { modelName: opts.modelName } : {}),
      ...(opts.handler !== undefined ? { handler: opts.handler } : {}),
      ...(opts.runtime !== undefined ? { runtime: opts.runtime } : {}),
      ...(opts.python !== undefined ? { python: opts.python } : {}),
      ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
      ...(opts.timeout !== undefined ? { timeoutSeconds: opts.timeout } : {}),
      ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
      headers: opts.header,
      ...(prespawned !== undefined ? { prespawned } : {}),
      ...(opts.quiet ? {} : { log: (line: string) => process.stderr.write(`${line}\n`) }),
    },
  );

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(results.map(resultJson), null, 2)}\n`);
  } else {
    const chunks: Buffer[] = [];
    for (const r of results) {
      if (!r.ok) continue;
      chunks.push(r.result.body);
      if (results.length > 1) chunks.push(Buffer.from('\n'));
    }
    if (chunks.length > 0) process.stdout.write(Buffer.concat(chunks));
  }
  // An answer with an error status (set by the handler, e.g. 400 for a malformed input) fails the run like a
  // handler error does: an HTTP client would get that status, and CI scripts test the exit code.
  let failed = false;
  results.forEach((r, i) => {
    const which = results.length > 1 ? ` (input ${i + 1}: ${inputs[i]!.label})` : '';
    if (r.ok) {
      if (r.status < 400) return;
      failed = true;
      const phrase = r.result.reasonPhrase || '(status set by the handler)';
      process.stderr.write(`error: ${r.status} ${phrase}${which}\n`);
      return;
    }
    failed = true;
    process.stderr.write(`error: ${r.status} ${r.error.message}${which}\n`);
  });
  if (failed) process.exitCode = 1;
}

export function registerPredict(program: Command): void {
  const sources: InputSource[] = [];
  program
    .command('predict')
    .description('run a model once on local inputs through a real worker (the same runtime as the server) and print the results')
    .argument('<model>', 'a .mar / .tar.gz archive or a model directory')
    .option(
      '-i, --input <file>',
      'an input file, - for stdin (repeatable; all inputs go as one batch when the batch size allows)',
      (v: string) => {
        sources.push({ kind: 'file', path: v });
        return v;
      },
    )
    .option('-d, --data <string>', 'an input given inline (repeatable)', (v: string) => {
      sources.push({ kind: 'data', text: v });
      return v;
    })
    .option('--content-type <type>', 'content type of every input (default: by file extension; --data: JSON or text/plain)')
    .option('--json', 'print [{status, reasonPhrase, headers, contentType, body}] instead of the raw bodies')
    .option('--handler <handler>', "override the manifest's handler (module[:function])")
    .option('--model-name <name>', "override the manifest's model name")
    .option('--runtime <runtime>', "override the manifest's runtime (python, python3, node)")
    .option('--python <path>', 'Python interpreter for python models', undefined)
    .option('--batch-size <n>', 'most inputs per batch (default: the model config batchSize, else all of them)', positiveInt('batch size'))
    .option(
      '--timeout <seconds>',
      'seconds the worker may take per batch (default: the model config responseTimeout, else 120)',
      positiveNumber,
    )
    .option('-H, --header <header>', "a request header 'Name: value' (repeatable)", parseHeader, [] as Array<[string, string]>)
    .option('-q, --quiet', "don't forward the worker's log lines to stderr")
    .option('--cache-dir <dir>', 'where extracted archives are kept (default: $MAR_CACHE_DIR, else ~/.cache/mar-tools/models)')
    .addHelpText(
      'after',
      `
Examples:
  model-server predict squeezenet.mar --input kitten.jpg
  model-server predict ./my-model --data '{"x": 1}' --data '{"x": 2}' --json
  model-server predict iris.mar --input a.json --input b.json --batch-size 2 --quiet`,
    )
    .action(async (source: string, opts: PredictOptions) => {
      await exitOnSignal(() => runPredict(source, opts, sources));
    });
}
