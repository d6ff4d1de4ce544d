import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MarError } from '../../src/errors.js';
import { Job } from '../../src/runtime/job-queue.js';
import type { PredictionResult } from '../../src/runtime/protocol.js';
import { completeBatch, loadError, workerDiedError } from '../../src/runtime/worker-reply.js';

function make(id: string): { job: Job; p: Promise<PredictionResult> } {
  let job!: Job;
  const p = new Promise<PredictionResult>((res, rej) => (job = new Job({ requestId: id, headers: [], params: [] }, res, rej)));
  return { job, p };
}

const pred = (id: string, statusCode: number): PredictionResult => ({
  requestId: id,
  contentType: 'text/plain',
  statusCode,
  reasonPhrase: 'Odd',
  headers: [['X-A', 'b']],
  body: Buffer.from(id),
});

describe('worker replies: statuses the handler chose go through handlerStatus', () => {
  it('a per-request status no HTTP response can carry becomes 500; the rest of the answer is kept', async () => {
    const [a, b, c] = [make('a'), make('b'), make('c')];
    completeBatch([a.job, b.job, c.job], {
      code: 200,
      message: 'Prediction success',
      predictions: [pred('a', 42), pred('b', 299), pred('c', 1000)],
    });
    assert.deepEqual(await a.p, { ...pred('a', 42), statusCode: 500 });
    assert.deepEqual(await b.p, pred('b', 299));
    assert.equal((await c.p).statusCode, 500);
  });

  it('a failed batch with such a code fails every job with 500 and the message', async () => {
    const [a, b] = [make('a'), make('b')];
    completeBatch([a.job, b.job], { code: 42, message: 'odd code', predictions: [] });
    for (const j of [a, b]) {
      await assert.rejects(
        j.p,
        (e: unknown) => e instanceof MarError && e.code === 'PREDICTION_FAILED' && e.httpStatus === 500 && e.message === 'odd code',
      );
    }
  });

  it('a failed LOAD keeps the worker code when it is a status (507 for MemoryError), else 500', () => {
    const err = loadError({ code: 507, message: 'Failed to load model m: MemoryError: x', predictions: [] }, 'm', 1);
    assert.deepEqual([err.code, err.httpStatus, err.message], ['WORKER_LOAD_FAILED', 507, 'Failed to load model m: MemoryError: x']);
    assert.equal(loadError({ code: 42, message: '', predictions: [] }, 'm', 1).message, 'Failed to load model m: worker answered 42');
    assert.equal(loadError({ code: 42, message: '', predictions: [] }, 'm', 1).httpStatus, 500);
  });

  it('a batch whose worker was killed from outside answers 507 "Worker died." from the registry code', () => {
    const oom = workerDiedError(new MarError('WORKER_OUT_OF_MEMORY', 'Worker died.'));
    assert.deepEqual(
      [oom.code, oom.httpStatus, oom.message, oom.type],
      ['WORKER_OUT_OF_MEMORY', 507, 'Worker died.', 'InternalServerException'],
    );
    const timeout = workerDiedError(new MarError('WORKER_TIMEOUT', 'too slow'));
    assert.deepEqual([timeout.code, timeout.httpStatus, timeout.message], ['WORKER_DIED', 500, 'Worker died.']);
  });
});
