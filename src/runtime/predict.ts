/**
 * predict: one model, a list of inputs, the answers; what `model-server predict` runs and what a CI script imports.
 * It opens the model (archive or directory), starts its workers through the same ModelRuntime as the server, with
 * the settings resolveServingOptions decides for predict, submits every input at once and closes everything again.
 */

import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { isMarError, MarError } from '../errors.js';
import { resolveRuntime } from '../handler/runtimes.js';
import { workerFieldCap } from './launchers.js';
import type { OpenModelOptions } from './model.js';
import { peekModel } from './model-peek.js';
import type { ModelRuntime } from './model-runtime.js';
import type { InferenceRequest, PredictionResult } from './protocol.js';
import { modelConfigNote, resolveServingOptions } from './serving-options.js';
import { type PrespawnGroup, prespawnWorkers } from './worker-prespawn.js';

/** One input: a request body with its content type, as an HTTP client would send it. */
export interface PredictInput {
  body: Buffer | string;
  /** Content-Type the handler sees (default application/octet-stream). */
  contentType?: string;
}

export interface PredictOptions extends Pick<OpenModelOptions, 'modelName' | 'handler' | 'runtime' | 'cacheDir' | 'cacheMaxSize'> {
  /** Python interpreter for python models (default: python3 on PATH). */
  python?: string;
  /** Most inputs per batch (default: the model config's batchSize, else all inputs in one batch). */
  batchSize?: number;
  /** Seconds a worker may take per batch (default: the model config's responseTimeout, else 120). */
  timeoutSeconds?: number;
  /** Request headers every input carries (after its Content-Type). */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** The workers' output lines (`[model W-1] ...`) and the run's notes, one line each; default: dropped. */
  log?: (line: string) => void;
  /**
   * @internal Workers the CLI's early entry (cli/early-spawn.ts) spawned ahead for this run with
   * prespawnPredictWorkers; predict adopts those launched as it would launch them and discards the rest.
   * Default: predict spawns its own.
   */
  prespawned?: PrespawnGroup;
}

/** The answer to one input: the handler's result, or the error an HTTP client would have got. */
export type PredictOutcome = { ok: true; status: number; result: PredictionResult } | { ok: false; status: number; error: Error };

function toRequest(input: PredictInput, headers: ReadonlyArray<readonly [string, string]>): InferenceRequest {
  const contentType = input.contentType ?? 'application/octet-stream';
  const value = typeof input.body === 'string' ? Buffer.from(input.body, 'utf8') : input.body;
  return {
    requestId: randomUUID(),
    // Like an HTTP client would send: the handler can read Content-Type with get_request_header.
    headers: [['Content-Type', contentType], ...headers.map(([n, v]): [string, string] => [n, v])],
    params: [{ name: 'body', contentType, value }],
  };
}

function outcome(r: PromiseSettledResult<PredictionResult>): PredictOutcome {
  if (r.status === 'fulfilled') return { ok: true, status: r.value.statusCode, result: r.value };
  const error = r.reason instanceof Error ? r.reason : new Error(String(r.reason));
  return { ok: false, status: isMarError(error) ? error.httpStatus : 500, error };
}

/**
 * Runs `model` (a .mar / .tar.gz / model directory) once on `inputs` and resolves with one outcome per input, in
 * order. Rejects (MarError) when the model cannot be opened or its workers cannot start; a handler error or an
 * error status answers only its input.
 */
export async function predict(model: string, inputs: readonly PredictInput[], options: PredictOptions = {}): Promise<PredictOutcome[]> {
  if (inputs.length === 0) throw new MarError('USAGE', 'nothing to predict: give at least one input');
  const requests = inputs.map((i) => toRequest(i, options.headers ?? []));
  // the workers start while the model is opened (extracted); the runtime below adopts them
  const early =
    options.prespawned !== undefined
      ? Promise.resolve(options.prespawned)
      : prespawnPredictWorkers(
          model,
          options,
          requests.map((r) => r.params[0]!.value.length),
        );
  try {
    // the runtime's own modules load once the worker is spawned, while it starts
    await early;
    return await predictOpened(model, requests, options, early);
  } finally {
    await (await early).discard();
  }
}

/** What predict asks of the serving options (the model config's layer joins once the model is open). */
function predictRequest(options: PredictOptions, sizes: readonly number[]) {
  return {
    caller: 'predict' as const,
    inputCount: sizes.length,
    largestInputBytes: Math.max(...sizes),
    batchSize: options.batchSize,
    responseTimeoutSeconds: options.timeoutSeconds,
    python: options.python,
  };
}

/**
 * Spawns the workers predict(model, inputs of these byte sizes, options) will adopt, as ModelRuntime will launch
 * them, guessing the model config adds nothing. Never rejects: the model's problems are openModel's to report.
 */
export async function prespawnPredictWorkers(
  model: string,
  options: Pick<PredictOptions, 'runtime' | 'python' | 'batchSize' | 'timeoutSeconds' | 'cacheDir' | 'cacheMaxSize'>,
  sizes: readonly number[],
): Promise<PrespawnGroup> {
  try {
    const { options: serving } = resolveServingOptions({ modelConfig: null, request: predictRequest(options, sizes) });
    const peek = await peekModel(resolve(model), {
      ...(options.cacheDir !== undefined ? { dir: options.cacheDir } : {}),
      ...(options.cacheMaxSize !== undefined ? { maxSize: options.cacheMaxSize } : {}),
    });
    return await prespawnWorkers(
      {
        runtime: resolveRuntime(options.runtime ?? peek.runtime),
        standInDir: peek.standInDir,
        workers: serving.minWorkers,
        decodeInputRequest: true,
        metrics: false,
        ...(serving.python !== undefined ? { python: serving.python } : {}),
        ...(serving.maxRequestBytes !== undefined ? { maxFieldBytes: workerFieldCap(serving.maxRequestBytes) } : {}),
      },
      serving.minWorkers,
    );
  } catch {
    // the model's own problems are openModel's to report
    return { pids: [], discard: async () => 0 };
  }
}

async function predictOpened(
  model: string,
  requests: InferenceRequest[],
  options: PredictOptions,
  early: Promise<PrespawnGroup>,
): Promise<PredictOutcome[]> {
  const log = options.log;
  const [{ openModel }, { ModelRuntime }] = await Promise.all([import('./model.js'), import('./model-runtime.js')]);
  const opened = await openModel(model, {
    ...(options.modelName !== undefined ? { modelName: options.modelName } : {}),
    ...(options.handler !== undefined ? { handler: options.handler } : {}),
    ...(options.runtime !== undefined ? { runtime: options.runtime } : {}),
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    ...(options.cacheMaxSize !== undefined ? { cacheMaxSize: options.cacheMaxSize } : {}),
  });
  try {
    const { options: serving, fromModelConfig } = resolveServingOptions({
      modelConfig: opened.config,
      request: predictRequest(
        options,
        requests.map((r) => r.params[0]!.value.length),
      ),
    });
    const note = modelConfigNote(opened, fromModelConfig);
    if (note !== null) log?.(note);
    let initialStartDone = false;
    // A replacement worker that cannot LOAD would leave the queued inputs waiting for ever (the server keeps
    // retrying, a one-shot run must end): the run stops and those inputs report this error.
    let restartError: MarError | null = null;
    const runtime: ModelRuntime = new ModelRuntime({
      model: opened,
      batchSize: serving.batchSize,
      maxBatchDelayMs: serving.maxBatchDelayMs,
      jobQueueSize: serving.jobQueueSize,
      responseTimeoutMs: serving.responseTimeoutSeconds * 1000,
      // The worker refuses length fields over its cap (a corrupt frame); local inputs may be large files.
      ...(serving.maxRequestBytes !== undefined ? { maxRequestBytes: serving.maxRequestBytes } : {}),
      minWorkers: serving.minWorkers,
      maxWorkers: serving.maxWorkers,
      ...(serving.python !== undefined ? { python: serving.python } : {}),
      log: log === undefined ? () => {} : (l) => log(`[${l.modelName} W-${l.workerId}] ${l.line}`),
      // A one-shot run never waits for restarts: only say that a worker died.
      onEvent: (e) => {
        if (e.type === 'died') log?.(`[${opened.name} W-${e.workerId}] worker died: ${e.error.message}`);
        if (e.type === 'start-failed' && initialStartDone && restartError === null) {
          restartError = e.error;
          void runtime.close({ graceMs: 0 });
        }
      },
    });
    try {
      await early;
      const started = await runtime.start({ synchronous: true });
      if (started.failed > 0) {
        throw started.error ?? new MarError('WORKER_START_FAILED', `the worker for model ${opened.name} failed to start`);
      }
      initialStartDone = true;
      const settled = await Promise.allSettled(requests.map((r) => runtime.submit(r)));
      const cause = restartError as MarError | null;
      // "No worker is available" for the inputs the failed restart left queued: say why.
      const unavailable = (r: PromiseSettledResult<PredictionResult>): boolean =>
        r.status === 'rejected' && isMarError(r.reason) && r.reason.code === 'SERVICE_UNAVAILABLE';
      return settled.map((r) => outcome(cause !== null && unavailable(r) ? { status: 'rejected', reason: cause } : r));
    } finally {
      await runtime.close({ graceMs: 5_000 });
    }
  } finally {
    await opened.release();
  }
}
