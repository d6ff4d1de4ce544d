import { isMarError, MarError } from '../errors.js';
import type { Job } from '../runtime/job-queue.js';
import type { InferenceRequest, PredictionResult } from '../runtime/protocol.js';
import type { ApiContext } from './api-context.js';
import type { InferenceSeries } from './metrics/server-metrics.js';
import type { ModelEntry } from './model-registry.js';

/** Who asked: the model name and version as the request named them (TorchServe's metrics label them so). */
export interface PredictionTarget {
  modelName: string;
  version?: string | undefined;
  /** Receives the way to withdraw the request while it waits (a client went away), then null once it is answered. */
  onCancel?: (cancel: (() => void) | null) => void;
}

/** Where a prediction's outcome goes: exactly one of the two is called, once. */
export interface PredictionCallbacks {
  onResult(result: PredictionResult): void;
  /** A MarError; REQUEST_CANCELLED when withdrawn through `onCancel` (nobody is left to answer). */
  onError(err: unknown): void;
}

/**
 * One prediction in flight: the callbacks the job calls (no promise between the worker's reply and the answer:
 * the batch-1 round trip is the hot path), the per-model metrics and the dialect's "no worker" text.
 */
class Prediction {
  readonly #api: ApiContext;
  readonly #target: PredictionTarget;
  readonly #to: PredictionCallbacks;
  readonly #series: InferenceSeries | null;
  readonly #begin: number;
  job: Job | null = null;

  constructor(api: ApiContext, target: PredictionTarget, to: PredictionCallbacks) {
    this.#api = api;
    this.#target = target;
    this.#to = to;
    // TorchServe's per-model metrics (null without metrics_address: nothing is measured)
    this.#series = api.metrics?.inference(target.modelName, target.version) ?? null;
    this.#series?.request();
    this.#begin = this.#series ? performance.now() : 0;
  }

  readonly resolve = (result: PredictionResult): void => {
    this.#target.onCancel?.(null);
    this.#series?.answered(this.#begin, this.job?.sentAt ?? 0, performance.now());
    this.#to.onResult(result);
  };

  readonly reject = (err: unknown): void => {
    this.#target.onCancel?.(null);
    this.#to.onError(dialectError(this.#api, err, this.#target.modelName));
  };
}

/**
 * One prediction, the way every front end runs it (MMS/TorchServe HTTP, KServe v1/v2, gRPC): submit to the model
 * version's runtime, count TorchServe's per-model metrics, and give the dialect's text to "no worker". The outcome
 * goes to `to` (possibly before this returns: a full queue is refused at once).
 */
export function startPrediction(
  api: ApiContext,
  entry: ModelEntry,
  input: InferenceRequest,
  target: PredictionTarget,
  to: PredictionCallbacks,
): void {
  const p = new Prediction(api, target, to);
  // a client that goes away takes its queued job with it
  const job = entry.runtime.submitTo(input, p.resolve, p.reject);
  if (job === null) return;
  p.job = job;
  if (target.onCancel && !job.isDone) target.onCancel(() => job.cancel());
}

/** startPrediction as a promise: rejects with a MarError; REQUEST_CANCELLED when withdrawn through `onCancel`. */
export function runPrediction(
  api: ApiContext,
  entry: ModelEntry,
  input: InferenceRequest,
  target: PredictionTarget,
): Promise<PredictionResult> {
  return new Promise((resolve, reject) => startPrediction(api, entry, input, target, { onResult: resolve, onError: reject }));
}

/** The dialect's text for "no worker" (TorchServe's differs from MMS's, kept by the runtime). */
function dialectError(api: ApiContext, err: unknown, modelName: string): unknown {
  const text = api.dialect.noWorker;
  if (text === null || !isMarError(err) || (err.code !== 'SERVICE_UNAVAILABLE' && err.code !== 'QUEUE_FULL')) return err;
  const code = err.code === 'QUEUE_FULL' ? 'QUEUE_FULL' : 'SERVICE_UNAVAILABLE';
  return new MarError(code, text(modelName), { cause: err });
}
