/** The minor GC that extraction runs after every few MiB of inflated output, and that it leaves no `gc` global. */
import assert from 'node:assert/strict';
import { constants, PerformanceObserver, performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { discardedBytes, YOUNG_GC_BYTES } from '../../src/util/young-gc.js';

test('a minor GC runs within the call that completes YOUNG_GC_BYTES, not before, and no context gets a gc global', async (t) => {
  if (typeof (globalThis as { gc?: unknown }).gc === 'function') {
    t.skip('node runs with --expose-gc here: the hiding cannot be checked');
    return;
  }
  // the first call fetches the collector, which creates a context (and may itself start a GC)
  discardedBytes(YOUNG_GC_BYTES);
  const minor: number[] = [];
  let wanted: [number, number] = [Number.POSITIVE_INFINITY, 0];
  let found: () => void = () => undefined;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as unknown as { detail: { kind: number } }).detail.kind !== constants.NODE_PERFORMANCE_GC_MINOR) continue;
      minor.push(e.startTime);
      if (e.startTime >= wanted[0] && e.startTime <= wanted[1]) found();
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  t.after(() => observer.disconnect());
  const earlyStart = performance.now();
  discardedBytes(YOUNG_GC_BYTES - 1);
  const earlyEnd = performance.now();
  const seen = new Promise<void>((resolve) => (found = resolve));
  const start = performance.now();
  discardedBytes(1);
  wanted = [start, performance.now()];
  // entries are delivered asynchronously, in order
  await seen;
  assert.deepEqual(
    minor.filter((s) => s >= earlyStart && s <= earlyEnd),
    [],
    'no GC while less than YOUNG_GC_BYTES were counted',
  );
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
  assert.equal(runInNewContext('typeof gc'), 'undefined');
});
