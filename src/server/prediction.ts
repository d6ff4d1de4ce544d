import { isMarError, MarError } from '../errors.js';
import type { InferenceRequest, PredictionResult } from '../runtime/protocol.js';
import type { ApiContext } from './api-context.js';
import type { ModelEntry } from './model-registry.js';

/** Who asked: the model name and version as the request named them (TorchServe's metrics label them so). */
export interface PredictionTarget {
  modelName: string;
  version?: string | undefined;
  /** Receives the way to withdraw the request while it waits (a client went away), then null once it is answered. */
  onCancel?: (cancel: (() => void) | null) => void;
}

/**
 * One prediction, the way every front end runs it (MMS/TorchServe HTTP, KServe v1/v2, gRPC): submit to the model
 * version's runtime, count TorchServe's per-model metrics, and give the dialect's text to "no worker". Rejects with a
 * MarError; REQUEST_CANCELLED when withdrawn through `onCancel` (nobody is left to answer).
 */
export async function runPrediction(
  api: ApiContext,
  entry: ModelEntry,
  input: InferenceRequest,
  target: PredictionTarget,
): Promise<PredictionResult> {
  // TorchServe's per-model metrics (null without metrics_address: nothing is measured)
  const series = api.metrics?.inference(target.modelName, target.version) ?? null;
  series?.request();
  const begin = series ? performance.now() : 0;
  // a client that goes away takes its queued job with it
  const submitted = entry.runtime.submitCancellable(input);
  target.onCancel?.(() => submitted.cancel());
  let result: PredictionResult;
  try {
    result = await submitted.promise;
  } catch (err) {
    throw dialectError(api, err, target.modelName);
  } finally {
    target.onCancel?.(null);
  }
  series?.answered(begin, submitted.sentAt, performance.now());
  return result;
}

/** The dialect's text for "no worker" (TorchServe's differs from MMS's, kept by the runtime). */
function dialectError(api: ApiContext, err: unknown, modelName: string): unknown {
  const text = api.dialect.noWorker;
  if (text === null || !isMarError(err) || (err.code !== 'SERVICE_UNAVAILABLE' && err.code !== 'QUEUE_FULL')) return err;
  const code = err.code === 'QUEUE_FULL' ? 'QUEUE_FULL' : 'SERVICE_UNAVAILABLE';
  return new MarError(code, text(modelName), { cause: err });
}
