import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { MarError, describeFsError, isMarError } from '../../errors.js';
import { openModel } from '../../runtime/model.js';
import { ModelRuntime } from '../../runtime/model-runtime.js';
import { modelConfigNote, resolveServingOptions } from '../../runtime/serving-options.js';
import type { InferenceRequest, PredictionResult } from '../../runtime/protocol.js';

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

function toRequest(input: Input, headers: ReadonlyArray<[string, string]>): InferenceRequest {
  return {
    requestId: randomUUID(),
    // Like an HTTP client would send: the handler can read Content-Type with get_request_header.
    headers: [['Content-Type', input.contentType], ...headers],
    params: [{ name: 'body', contentType: input.contentType, value: input.value }],
  };
}

/** Body as UTF-8 text when it decodes cleanly, else base64. */
function bodyJson(body: Buffer): { body: string; encoding?: 'base64' } {
  const text = body.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(body)) return { body: text };
  return { body: body.toString('base64'), encoding: 'base64' };
}

function resultJson(r: PromiseSettledResult<PredictionResult>): Record<string, unknown> {
  if (r.status === 'rejected') {
    const err = r.reason as unknown;
    return isMarError(err) ? { status: err.httpStatus, error: err.message } : { status: 500, error: String(err) };
  }
  const p = r.value;
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

async function predict(source: string, opts: PredictOptions, sources: readonly InputSource[]): Promise<void> {
  if (sources.length === 0) throw new MarError('USAGE', 'nothing to predict: give at least one --input FILE or --data STRING');
  const inputs = await readInputs(sources, opts.contentType);
  const model = await openModel(source, {
    ...(opts.modelName !== undefined ? { modelName: opts.modelName } : {}),
    ...(opts.handler !== undefined ? { handler: opts.handler } : {}),
    ...(opts.runtime !== undefined ? { runtime: opts.runtime } : {}),
  });
  let results: Array<PromiseSettledResult<PredictionResult>>;
  try {
    const quiet = opts.quiet === true;
    // All inputs go as one batch unless a batch size (--batch-size, else the model config's) caps it.
    const { options: serving, fromModelConfig } = resolveServingOptions({
      modelConfig: model.config,
      request: {
        caller: 'predict',
        inputCount: inputs.length,
        largestInputBytes: Math.max(...inputs.map((i) => i.value.length)),
        batchSize: opts.batchSize,
        responseTimeoutSeconds: opts.timeout,
        python: opts.python,
      },
    });
    const note = modelConfigNote(model, fromModelConfig);
    if (note !== null && !quiet) process.stderr.write(`${note}\n`);
    let initialStartDone = false;
    // A replacement worker that cannot LOAD would leave the queued inputs waiting for ever (the server keeps
    // retrying, a one-shot run must end): the run stops and those inputs report this error.
    let restartError: MarError | null = null;
    const runtime: ModelRuntime = new ModelRuntime({
      model,
      batchSize: serving.batchSize,
      maxBatchDelayMs: serving.maxBatchDelayMs,
      jobQueueSize: serving.jobQueueSize,
      responseTimeoutMs: serving.responseTimeoutSeconds * 1000,
      // The worker refuses length fields over its cap (a corrupt frame); local inputs may be large files.
      maxRequestBytes: serving.maxRequestBytes,
      minWorkers: serving.minWorkers,
      maxWorkers: serving.maxWorkers,
      ...(serving.python !== undefined ? { python: serving.python } : {}),
      ...(quiet ? { log: () => {} } : {}),
      // A one-shot run never waits for restarts: only say that a worker died.
      onEvent: (e) => {
        if (!quiet && e.type === 'died') process.stderr.write(`[${model.name} W-${e.workerId}] worker died: ${e.error.message}\n`);
        if (e.type === 'start-failed' && initialStartDone && restartError === null) {
          restartError = e.error;
          void runtime.close({ graceMs: 0 });
        }
      },
    });
    try {
      const started = await runtime.start({ synchronous: true });
      if (started.failed > 0) {
        throw started.error ?? new MarError('WORKER_START_FAILED', `the worker for model ${model.name} failed to start`);
      }
      initialStartDone = true;
      results = await Promise.allSettled(inputs.map((input) => runtime.submit(toRequest(input, opts.header))));
      const cause = restartError as MarError | null;
      if (cause !== null) {
        // "No worker is available" for the inputs the failed restart left queued: say why.
        results = results.map((r) =>
          r.status === 'rejected' && isMarError(r.reason) && r.reason.code === 'SERVICE_UNAVAILABLE' ? { status: 'rejected', reason: cause } : r,
        );
      }
    } finally {
      await runtime.close({ graceMs: 5_000 });
    }
  } finally {
    await model.release();
  }

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(results.map(resultJson), null, 2)}\n`);
  } else {
    const chunks: Buffer[] = [];
    for (const r of results) {
      if (r.status !== 'fulfilled') continue;
      chunks.push(r.value.body);
      if (results.length > 1) chunks.push(Buffer.from('\n'));
    }
    if (chunks.length > 0) process.stdout.write(Buffer.concat(chunks));
  }
  // An answer with an error status (set by the handler, e.g. 400 for a malformed input) fails the run like a
  // handler error does: an HTTP client would get that status, and CI scripts test the exit code.
  let failed = false;
  results.forEach((r, i) => {
    const which = results.length > 1 ? ` (input ${i + 1}: ${inputs[i]!.label})` : '';
    if (r.status === 'fulfilled') {
      if (r.value.statusCode < 400) return;
      failed = true;
      const phrase = r.value.reasonPhrase || '(status set by the handler)';
      process.stderr.write(`error: ${r.value.statusCode} ${phrase}${which}\n`);
      return;
    }
    failed = true;
    const err = r.reason as unknown;
    const status = isMarError(err) ? err.httpStatus : 500;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`error: ${status} ${message}${which}\n`);
  });
  if (failed) process.exitCode = 1;
}

export function registerPredict(program: Command): void {
  const sources: InputSource[] = [];
  program
    .command('predict')
    .description('run a model once on local inputs through a real worker (the same runtime as the server) and print the results')
    .argument('<model>', 'a .mar / .tar.gz archive or a model directory')
    .option('-i, --input <file>', 'an input file, - for stdin (repeatable; all inputs go as one batch when the batch size allows)', (v: string) => {
      sources.push({ kind: 'file', path: v });
      return v;
    })
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
    .option('--timeout <seconds>', 'seconds the worker may take per batch (default: the model config responseTimeout, else 120)', positiveNumber)
    .option('-H, --header <header>', "a request header 'Name: value' (repeatable)", parseHeader, [] as Array<[string, string]>)
    .option('-q, --quiet', "don't forward the worker's log lines to stderr")
    .addHelpText(
      'after',
      `
Examples:
  model-server predict squeezenet.mar --input kitten.jpg
  model-server predict ./my-model --data '{"x": 1}' --data '{"x": 2}' --json
  model-server predict iris.mar --input a.json --input b.json --batch-size 2 --quiet`,
    )
    .action(async (source: string, opts: PredictOptions) => {
      await exitOnSignal(() => predict(source, opts, sources));
    });
}
