/**
 * What a worker's answers mean for the requests that wait on them: a LOAD reply becomes a loaded worker or a
 * MarError, a PREDICT reply answers each job of its batch, and a death answers them "Worker died."
 * (MMS WorkerThread and BatchAggregator.sendResponse, docs/worker-protocol.md §5.3). Statuses the handler or worker
 * chose go through handlerStatus, the one rule for them.
 */
import { handlerStatus, isMarError, MarError } from '../errors.js';
import type { Job } from './job-queue.js';
import type { PredictionResult, WorkerReply } from './protocol.js';

/** A non-200 LOAD reply: WORKER_LOAD_FAILED with the worker's message and code. */
export function loadError(reply: WorkerReply, modelName: string, pid: number): MarError {
  return new MarError('WORKER_LOAD_FAILED', reply.message || `Failed to load model ${modelName}: worker answered ${reply.code}`, {
    httpStatus: reply.code,
    details: { code: reply.code, pid },
  });
}

/** Every job of a batch whose worker died or timed out gets this (MMS: 500, 507 when the exit code was 137). */
export function workerDiedError(cause: unknown): MarError {
  return new MarError(isMarError(cause) && cause.code === 'WORKER_OUT_OF_MEMORY' ? 'WORKER_OUT_OF_MEMORY' : 'WORKER_DIED', 'Worker died.', {
    cause,
  });
}

/** A prediction whose status an HTTP response can carry (see handlerStatus). */
function withValidStatus(p: PredictionResult): PredictionResult {
  const status = handlerStatus(p.statusCode);
  return status === p.statusCode ? p : { ...p, statusCode: status };
}

/**
 * Answers every job of a batch from the worker's reply. Code 200: predictions are matched to jobs by requestId
 * (in batch order when they line up, which is what MMS and our workers send); a job with no prediction gets
 * 503 "Invalid model predict output". Any other code: every job fails with that code and message (MMS
 * `BatchAggregator.sendResponse`).
 */
export function completeBatch(batch: readonly Job[], reply: WorkerReply): void {
  if (reply.code !== 200) {
    const err = new MarError('PREDICTION_FAILED', reply.message || 'Prediction failed', { httpStatus: reply.code });
    for (const job of batch) job.reject(err);
    return;
  }
  const preds = reply.predictions;
  let byId: Map<string, (typeof preds)[number]> | null = null;
  for (let i = 0; i < batch.length; i++) {
    const job = batch[i]!;
    const p = preds[i];
    if (p !== undefined && p.requestId === job.request.requestId) {
      job.resolve(withValidStatus(p));
      continue;
    }
    if (byId === null) {
      byId = new Map();
      for (const q of preds) if (!byId.has(q.requestId)) byId.set(q.requestId, q);
    }
    const match = byId.get(job.request.requestId);
    if (match) job.resolve(withValidStatus(match));
    else job.reject(new MarError('PREDICTION_FAILED', 'Invalid model predict output'));
  }
}
