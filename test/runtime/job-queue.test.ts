import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MarError } from '../../src/errors.js';
import { Job, JobQueue } from '../../src/runtime/job-queue.js';
import type { InferenceRequest, PredictionResult } from '../../src/runtime/protocol.js';

const request = (id: string): InferenceRequest => ({ requestId: id, headers: [], params: [] });

function makeJob(id: string, signal?: AbortSignal): { job: Job; promise: Promise<PredictionResult> } {
  let job!: Job;
  const promise = new Promise<PredictionResult>((resolve, reject) => {
    job = new Job(request(id), resolve, reject, signal);
  });
  return { job, promise };
}

describe('JobQueue', () => {
  it('is FIFO and refuses offers beyond its capacity', () => {
    const q = new JobQueue<number>(3);
    assert.equal(q.offer(1), true);
    assert.equal(q.offer(2), true);
    assert.equal(q.offer(3), true);
    assert.equal(q.isFull, true);
    assert.equal(q.offer(4), false, 'a full queue refuses (the runtime answers 503)');
    assert.equal(q.length, 3);
    assert.deepEqual([q.poll(), q.poll(), q.poll(), q.poll()], [1, 2, 3, undefined]);
    assert.equal(q.offer(5), true, 'room again once jobs were taken');
  });

  it('keeps order across many wrap-arounds of its ring buffer', () => {
    const q = new JobQueue<number>(5);
    const out: number[] = [];
    let next = 0;
    for (let round = 0; round < 200; round++) {
      while (q.offer(next)) next++;
      out.push(q.poll()!, q.poll()!);
    }
    out.push(...q.drain());
    assert.deepEqual(
      out,
      Array.from({ length: next }, (_, i) => i),
    );
  });

  it('puts pulled jobs back at the head in their order, even beyond capacity', () => {
    const q = new JobQueue<string>(3);
    q.offer('a');
    q.offer('b');
    q.offer('c');
    const pulled = [q.poll()!, q.poll()!];
    q.offer('d');
    q.offer('e');
    q.unshiftAll(pulled);
    assert.equal(q.length, 5, 'jobs already accepted are never dropped');
    assert.equal(q.offer('f'), false);
    assert.deepEqual(q.drain(), ['a', 'b', 'c', 'd', 'e']);
  });

  it('removes a job from the middle without disturbing the others', () => {
    const q = new JobQueue<string>(10);
    for (const s of ['a', 'b', 'c', 'd']) q.offer(s);
    q.poll();
    q.offer('e');
    assert.equal(q.remove('c'), true);
    assert.equal(q.remove('zzz'), false);
    assert.deepEqual(q.drain(), ['b', 'd', 'e']);
  });

  it('rejects a capacity below 1', () => {
    assert.throws(
      () => new JobQueue(0),
      (e: unknown) => e instanceof MarError && e.code === 'USAGE',
    );
  });
});

describe('Job', () => {
  it('settles once: a late answer after a rejection is ignored', async () => {
    const { job, promise } = makeJob('r1');
    job.reject(new MarError('WORKER_DIED', 'Worker died.'));
    job.resolve({ requestId: 'r1', contentType: null, statusCode: 200, reasonPhrase: '', headers: [], body: Buffer.alloc(0) });
    await assert.rejects(promise, { message: 'Worker died.' });
    assert.equal(job.isDone, true);
  });

  it('an abort takes a queued job out of the queue and rejects it with REQUEST_CANCELLED', async () => {
    const q = new JobQueue<Job>(10);
    const ac = new AbortController();
    const a = makeJob('a');
    const b = makeJob('b', ac.signal);
    b.job.onAbort = (j) => q.remove(j);
    b.job.watchAbort();
    q.offer(a.job);
    q.offer(b.job);
    ac.abort(new Error('client went away'));
    await assert.rejects(b.promise, (e: unknown) => e instanceof MarError && e.code === 'REQUEST_CANCELLED');
    assert.deepEqual(q.drain(), [a.job]);
  });

  it('an abort after the job was sent still answers the caller at once', async () => {
    const ac = new AbortController();
    const { job, promise } = makeJob('x', ac.signal);
    let removed = false;
    job.onAbort = () => (removed = true);
    job.watchAbort();
    job.markSent();
    ac.abort();
    await assert.rejects(promise, (e: unknown) => e instanceof MarError && e.code === 'REQUEST_CANCELLED');
    assert.equal(removed, false, 'a sent job is not in any queue');
  });
});
