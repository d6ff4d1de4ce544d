import assert from 'node:assert/strict';
import { describe, it, type MockTimers, type TestContext } from 'node:test';
import { BatchAggregator, type BatchTarget } from '../../src/runtime/batch-aggregator.js';
import { JobQueue } from '../../src/runtime/job-queue.js';

/** A stand-in worker for these units only: records the batches it was given. */
class FakeWorker implements BatchTarget<string> {
  readonly batches: string[][] = [];
  constructor(readonly name: string) {}
  runBatch(batch: string[]): void {
    this.batches.push(batch);
  }
}

function setup(batchSize: number, maxBatchDelayMs: number, capacity = 100) {
  const queue = new JobQueue<string>(capacity);
  const agg = new BatchAggregator<string>(queue, { batchSize, maxBatchDelayMs });
  return { queue, agg };
}

/** The aggregator's timers run on node:test's mock clock: `tick(ms)` moves time, nothing waits for real. */
function mockClock(t: TestContext): MockTimers {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  return t.mock.timers;
}

describe('BatchAggregator', () => {
  it('batch size 1: each job goes straight to an idle worker; without one it waits in the queue', () => {
    const { queue, agg } = setup(1, 100);
    const w = new FakeWorker('w');
    agg.ready(w);
    agg.add('a');
    assert.deepEqual(w.batches, [['a']]);
    agg.add('b');
    agg.add('c');
    assert.equal(queue.length, 2, 'the worker is busy: jobs wait');
    agg.ready(w);
    agg.ready(w);
    assert.deepEqual(w.batches, [['a'], ['b'], ['c']]);
    assert.equal(queue.length, 0);
  });

  it('a max batch delay beyond the timer range (2^31-1 ms) keeps the batch forming instead of sending it at once', (t) => {
    const clock = mockClock(t);
    const { agg } = setup(2, 3_000_000_000);
    const w = new FakeWorker('w');
    agg.ready(w);
    agg.add('a');
    // An overflowing setTimeout fires after 1 ms (node's mock clock does the same): a day later, nothing may have left.
    clock.tick(24 * 3600 * 1000);
    assert.equal(w.batches.length, 0, 'still forming');
    agg.add('b');
    assert.deepEqual(w.batches, [['a', 'b']]);
    agg.close();
  });

  it('a full batch leaves at once, without waiting for the delay', (t) => {
    const clock = mockClock(t);
    const { agg } = setup(3, 60_000);
    const w = new FakeWorker('w');
    agg.ready(w);
    agg.add('a');
    agg.add('b');
    assert.equal(w.batches.length, 0, 'still forming');
    assert.equal(agg.formingLength, 2);
    agg.add('c');
    assert.deepEqual(w.batches, [['a', 'b', 'c']], 'sent synchronously when full: no 60 s timer was waited for');
    clock.tick(60_000);
    assert.deepEqual(w.batches, [['a', 'b', 'c']], 'the delay timer of the sent batch sends nothing more');
  });

  it('jobs already queued when a worker becomes ready are taken up to the batch size', () => {
    const { queue, agg } = setup(2, 60_000);
    for (const j of ['a', 'b', 'c']) agg.add(j);
    const w = new FakeWorker('w');
    agg.ready(w);
    assert.deepEqual(w.batches, [['a', 'b']]);
    assert.equal(queue.length, 1);
  });

  it('a partial batch leaves when max_batch_delay (counted from its first job) is used up', (t) => {
    const clock = mockClock(t);
    const { agg } = setup(8, 100);
    const w = new FakeWorker('w');
    agg.ready(w);
    agg.add('a');
    clock.tick(90);
    // A second job arrives later; it must not restart the budget.
    agg.add('b');
    clock.tick(9);
    assert.equal(w.batches.length, 0, 'still forming at 99 ms');
    clock.tick(1);
    // Had the budget restarted with the second job, the batch would leave at 190 ms.
    assert.deepEqual(w.batches, [['a', 'b']], 'left at 100 ms after the first job');
  });

  it('max_batch_delay 0 sends whatever is queued right away', () => {
    const { agg } = setup(8, 0);
    const w = new FakeWorker('w');
    agg.add('a');
    agg.add('b');
    agg.ready(w);
    assert.deepEqual(w.batches, [['a', 'b']]);
    agg.ready(w);
    agg.add('c');
    assert.deepEqual(w.batches[1], ['c']);
  });

  it('one batch forms at a time: workers take turns in the order they became ready, batches in dequeue order', () => {
    const { agg } = setup(2, 60_000);
    const w1 = new FakeWorker('w1');
    const w2 = new FakeWorker('w2');
    agg.ready(w1);
    agg.ready(w2);
    for (const j of ['1', '2', '3', '4', '5']) agg.add(j);
    assert.deepEqual(w1.batches, [['1', '2']]);
    assert.deepEqual(w2.batches, [['3', '4']]);
    assert.equal(agg.formingLength, 0, 'no idle worker left to form a batch for job 5');
    agg.ready(w2);
    assert.equal(agg.formingLength, 1, 'w2 took job 5 and waits for a second one');
    agg.add('6');
    assert.deepEqual(w2.batches[1], ['5', '6']);
  });

  it('withdrawing the worker that forms a batch puts its jobs back at the head for the next worker', () => {
    const { queue, agg } = setup(3, 60_000);
    const w1 = new FakeWorker('w1');
    const w2 = new FakeWorker('w2');
    agg.ready(w1);
    agg.add('a');
    agg.add('b');
    assert.equal(agg.withdraw(w1), true);
    assert.equal(queue.length, 2);
    assert.equal(queue.peek(), 'a', 'back at the head, in order');
    agg.add('c');
    agg.ready(w2);
    assert.deepEqual(w2.batches, [['a', 'b', 'c']]);
    assert.equal(w1.batches.length, 0);
    assert.equal(agg.withdraw(w1), false, 'not idle here any more');
  });

  it('removeJob takes a job out of a forming batch; an emptied batch stops its timer', (t) => {
    const clock = mockClock(t);
    const { agg } = setup(4, 30);
    const w = new FakeWorker('w');
    agg.ready(w);
    agg.add('a');
    agg.add('b');
    assert.equal(agg.removeJob('a'), true);
    assert.equal(agg.removeJob('b'), true);
    assert.equal(agg.formingLength, 0);
    assert.equal(agg.idleTargets, 1, 'the worker waits for a first job again');
    clock.tick(10);
    agg.add('c');
    // The emptied batch's timer (due at 30 ms) must not send c early: c's own budget ends at 40 ms.
    clock.tick(29);
    assert.equal(w.batches.length, 0, 'c waits for its own max_batch_delay');
    clock.tick(1);
    assert.deepEqual(w.batches, [['c']]);
  });

  it('close() returns a forming batch to the queue and hands out nothing more', () => {
    const { queue, agg } = setup(4, 60_000);
    const w = new FakeWorker('w');
    agg.ready(w);
    agg.add('a');
    agg.close();
    assert.deepEqual(queue.drain(), ['a']);
    agg.ready(w);
    agg.add('b');
    assert.equal(w.batches.length, 0);
  });

  it('rejects bad options', () => {
    const queue = new JobQueue<string>(1);
    assert.throws(() => new BatchAggregator(queue, { batchSize: 0, maxBatchDelayMs: 1 }), /batch size/);
    assert.throws(() => new BatchAggregator(queue, { batchSize: 1, maxBatchDelayMs: -1 }), /max batch delay/);
  });
});
