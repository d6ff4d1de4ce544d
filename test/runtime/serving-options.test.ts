/** Which settings a model runs with: one precedence for predict, register calls and startup models. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  modelConfigNote,
  resolveServingOptions,
  type ServerServingDefaults,
  type ServingOptions,
} from '../../src/runtime/serving-options.js';

/** config.properties values that differ from every other layer's, so a test sees which one won. */
const SERVER: ServerServingDefaults = {
  jobQueueSize: 300,
  defaultResponseTimeoutSeconds: 7200,
  defaultWorkersPerModel: 0,
  startupWorkersPerModel: 3,
  python: '/opt/py/bin/python3',
  decodeInputRequest: false,
  maxRequestSize: 6553500,
  maxResponseSize: 7000000,
};
const CONFIG = {
  batchSize: 2,
  maxBatchDelay: 77,
  responseTimeout: 33,
  jobQueueSize: 50,
  minWorkers: 2,
  maxWorkers: 2,
  handler: { topk: 5 },
};

const picked = (o: ServingOptions) => [
  o.batchSize,
  o.maxBatchDelayMs,
  o.responseTimeoutSeconds,
  o.jobQueueSize,
  o.minWorkers,
  o.maxWorkers,
];

test('the same archive config gives predict, a register call and a startup model the same settings', () => {
  const register = resolveServingOptions({ modelConfig: CONFIG, server: SERVER, request: { caller: 'register' } }).options;
  const startup = resolveServingOptions({ modelConfig: CONFIG, server: SERVER, request: { caller: 'startup' } }).options;
  const predict = resolveServingOptions({
    modelConfig: CONFIG,
    request: { caller: 'predict', inputCount: 4, largestInputBytes: 10 },
  }).options;
  assert.deepEqual(picked(register), [2, 77, 33, 50, 2, 2]);
  assert.deepEqual(picked(startup), picked(register));
  assert.deepEqual(picked(predict), picked(register));
  // register parameters do not beat the archive's config (TorchServe)...
  const params = { caller: 'register', batchSize: 8, maxBatchDelayMs: 500, responseTimeoutSeconds: 9, initialWorkers: 4 } as const;
  assert.deepEqual(picked(resolveServingOptions({ modelConfig: CONFIG, server: SERVER, request: params }).options), [2, 77, 33, 50, 2, 2]);
});

test('named row: an explicit predict flag beats model-config.yaml; a register parameter does not', () => {
  const predict = resolveServingOptions({
    modelConfig: CONFIG,
    request: { caller: 'predict', inputCount: 4, largestInputBytes: 10, batchSize: 3, responseTimeoutSeconds: 0.5 },
  });
  assert.deepEqual(picked(predict.options), [3, 77, 0.5, 50, 2, 2]);
  const register = resolveServingOptions({
    modelConfig: CONFIG,
    server: SERVER,
    request: { caller: 'register', batchSize: 3, responseTimeoutSeconds: 5 },
  });
  assert.deepEqual([register.options.batchSize, register.options.responseTimeoutSeconds], [2, 33]);
  // what the server logs and predict prints: only what the file decided
  assert.equal(
    modelConfigNote(
      { name: 'm', manifest: { runtime: 'python', model: { modelName: 'm', handler: 'h', configFile: 'model-config.yaml' } } },
      register.fromModelConfig,
    ),
    'Model m: batchSize 2, maxBatchDelayMs 77, responseTimeoutSeconds 33, jobQueueSize 50, workers 2..2 from model-config.yaml',
  );
  assert.equal(
    modelConfigNote({ name: 'm', manifest: null }, predict.fromModelConfig),
    'Model m: maxBatchDelayMs 77, jobQueueSize 50, workers 2..2 from the model config',
  );
  assert.equal(
    modelConfigNote(
      { name: 'm', manifest: null },
      resolveServingOptions({ modelConfig: null, server: SERVER, request: { caller: 'startup' } }).fromModelConfig,
    ),
    null,
  );
});

test('without a model config: register parameters, then config.properties, then the MMS defaults', () => {
  const bare = resolveServingOptions({ modelConfig: null, server: SERVER, request: { caller: 'register' } }).options;
  assert.deepEqual(bare, {
    batchSize: 1,
    maxBatchDelayMs: 100,
    responseTimeoutSeconds: 7200,
    jobQueueSize: 300,
    minWorkers: 0,
    maxWorkers: 0,
    python: '/opt/py/bin/python3',
    decodeInputRequest: false,
    maxRequestBytes: 6553500,
    maxResponseBytes: 7000000,
  });
  const given = resolveServingOptions({
    modelConfig: null,
    server: SERVER,
    request: { caller: 'register', batchSize: 4, maxBatchDelayMs: 50, responseTimeoutSeconds: 5, initialWorkers: 2 },
  }).options;
  assert.deepEqual(picked(given), [4, 50, 5, 300, 2, 2]);
  // response_timeout <= 0 means "not given"; batch size and delay are bounded; negative workers start none
  const odd = resolveServingOptions({
    modelConfig: null,
    server: SERVER,
    request: { caller: 'register', batchSize: 0, maxBatchDelayMs: -1, responseTimeoutSeconds: -1, initialWorkers: -2 },
  }).options;
  assert.deepEqual(picked(odd), [1, 0, 7200, 300, 0, 0]);
  assert.deepEqual(
    picked(resolveServingOptions({ modelConfig: null, server: SERVER, request: { caller: 'startup' } }).options),
    [1, 100, 7200, 300, 3, 3],
  );
});

test('model-config.yaml values count only when positive, workers only as a valid pair', () => {
  const config = { batchSize: 0, maxBatchDelay: -1, responseTimeout: 0, minWorkers: 3, maxWorkers: 2 };
  const r = resolveServingOptions({ modelConfig: config, server: SERVER, request: { caller: 'register', initialWorkers: 1 } });
  assert.deepEqual(picked(r.options), [1, 100, 7200, 300, 1, 1]);
  assert.deepEqual(r.fromModelConfig, {});
  const lone = resolveServingOptions({ modelConfig: { minWorkers: 1 }, server: SERVER, request: { caller: 'startup' } }).options;
  assert.deepEqual([lone.minWorkers, lone.maxWorkers], [3, 3]);
});

test("predict's own layer: all inputs as one batch, 100 ms, 120 s, one worker; bounded by its inputs", () => {
  const bare = resolveServingOptions({
    modelConfig: null,
    request: { caller: 'predict', inputCount: 3, largestInputBytes: 42, python: 'py3' },
  }).options;
  assert.deepEqual(bare, {
    batchSize: 3,
    maxBatchDelayMs: 100,
    responseTimeoutSeconds: 120,
    jobQueueSize: 100,
    minWorkers: 1,
    maxWorkers: 1,
    python: 'py3',
    maxRequestBytes: 42,
  });
  // batch size <= inputs, queue >= inputs, no more workers than batches
  const big = { batchSize: 16, jobQueueSize: 2, minWorkers: 4, maxWorkers: 8 };
  assert.deepEqual(
    picked(resolveServingOptions({ modelConfig: big, request: { caller: 'predict', inputCount: 5, largestInputBytes: 1 } }).options),
    [5, 100, 120, 5, 1, 1],
  );
  const many = resolveServingOptions({
    modelConfig: big,
    request: { caller: 'predict', inputCount: 200, largestInputBytes: 1, batchSize: 50 },
  }).options;
  assert.deepEqual(picked(many), [50, 100, 120, 200, 4, 4]);
});
