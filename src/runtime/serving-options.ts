/**
 * Which settings a model runs with: one decision for `model-server predict` and for the server (register calls
 * and startup models), from up to four layers. The first layer in the caller's order that sets a value wins:
 *
 * | caller                    | 1st                        | 2nd                 | 3rd               | last              |
 * |---------------------------|----------------------------|---------------------|-------------------|-------------------|
 * | register (POST /models)   | model-config.yaml          | register parameters | config.properties | register defaults |
 * | startup (load_models)     | model-config.yaml          | config.properties   | register defaults |                   |
 * | snapshot (model_snapshot) | the snapshot's values      | model-config.yaml   | config.properties | register defaults |
 * | predict                   | explicit predict flags     | model-config.yaml   | predict defaults  |                   |
 *
 * The one difference in order is a rule of its own: an explicit predict flag (`--batch-size`, `--timeout`) is
 * typed for this one run and beats the archive's model-config.yaml; a register parameter does not (TorchServe's
 * rule: the archive's config wins over the register call). A TorchServe model_snapshot restores exactly the batch size,
 * delay, timeout and workers it recorded (TorchServe's Model#setModelState). Predict reads no config.properties.
 *
 * What each layer sets (model-config.yaml values count only when positive, workers only as a valid pair):
 *
 * | setting            | model-config.yaml     | register param       | predict flag    | config.properties            | predict default      |
 * |--------------------|-----------------------|----------------------|-----------------|------------------------------|----------------------|
 * | batch size         | batchSize             | batch_size           | --batch-size    |                              | the number of inputs |
 * | max batch delay    | maxBatchDelay (ms)    | max_batch_delay      |                 |                              | 100 ms               |
 * | response timeout   | responseTimeout (s)   | response_timeout > 0 | --timeout       | default_response_timeout *   | 120 s                |
 * | job queue size     | jobQueueSize          |                      |                 | job_queue_size               | 100                  |
 * | min/max workers    | minWorkers+maxWorkers | initial_workers      |                 | default_workers_per_model ** | 1                    |
 * | python interpreter |                       |                      | --python        | python                       | python3              |
 * | decode inputs      |                       |                      |                 | decode_input_request         | true                 |
 * | max request bytes  |                       |                      | (largest input) | max_request_size             |                      |
 * | max response bytes |                       |                      |                 | max_response_size            | the worker's         |
 *
 * (*) or default_response_timeout_seconds. (**) startup models: default_workers_per_model, else the CPU count.
 * Register and startup defaults: batch size 1 and max batch delay 100 ms (MMS's); config.properties, with its own
 * defaults, sets the rest.
 *
 * Then the bounds: batch size >= 1, max batch delay >= 0, workers >= 0. Predict also submits all its inputs at
 * once and runs them only once, so its batch size is at most the number of inputs, its job queue at least that,
 * and it starts no more workers than it has batches.
 */

import type { OpenedModel } from './model.js';

/** What a TorchServe model-config.yaml in the archive sets for serving (the keys its frontend reads). */
export interface ModelConfigSettings {
  batchSize?: number;
  maxBatchDelayMs?: number;
  responseTimeoutSeconds?: number;
  jobQueueSize?: number;
  /** minWorkers/maxWorkers: used instead of initial_workers (and of the startup worker count). */
  workers?: { min: number; max: number };
}

/**
 * TorchServe's rules: a positive batchSize, maxBatchDelay, responseTimeout or jobQueueSize counts;
 * minWorkers/maxWorkers count only as a valid pair (min > 0, max >= min).
 */
export function modelConfigSettings(config: Record<string, unknown> | null): ModelConfigSettings {
  const out: ModelConfigSettings = {};
  if (!config) return out;
  const positive = (key: string): number | undefined => {
    const v = config[key];
    return Number.isInteger(v) && (v as number) > 0 ? (v as number) : undefined;
  };
  const set = <K extends keyof ModelConfigSettings>(key: K, value: ModelConfigSettings[K] | undefined): void => {
    if (value !== undefined) out[key] = value;
  };
  set('batchSize', positive('batchSize'));
  set('maxBatchDelayMs', positive('maxBatchDelay'));
  set('responseTimeoutSeconds', positive('responseTimeout'));
  set('jobQueueSize', positive('jobQueueSize'));
  const min = positive('minWorkers');
  const max = positive('maxWorkers');
  if (min !== undefined && max !== undefined && max >= min) out.workers = { min, max };
  return out;
}

/** The config.properties values that are per-model defaults (a subset of the server's ServerConfig). */
export interface ServerServingDefaults {
  readonly jobQueueSize: number;
  readonly defaultResponseTimeoutSeconds: number;
  /** Workers for a register call without initial_workers. */
  readonly defaultWorkersPerModel: number;
  /** Workers for a startup model. */
  readonly startupWorkersPerModel: number;
  readonly python: string;
  readonly decodeInputRequest: boolean;
  readonly maxRequestSize: number;
  readonly maxResponseSize: number;
}

/** What the caller asked for: a register call's parameters, a startup model (none), or predict's flags. */
export type ServingRequest =
  | {
      caller: 'register';
      batchSize?: number | undefined;
      maxBatchDelayMs?: number | undefined;
      /** Seconds; 0 or less means "not given" (the server default), as MMS. */
      responseTimeoutSeconds?: number | undefined;
      initialWorkers?: number | undefined;
    }
  | { caller: 'startup' }
  | {
      caller: 'snapshot';
      batchSize: number;
      maxBatchDelayMs: number;
      /** Seconds; absent: the next layers decide (TorchServe: the model's default). */
      responseTimeoutSeconds?: number | undefined;
      minWorkers: number;
      maxWorkers: number;
    }
  | {
      caller: 'predict';
      /** How many inputs the run submits (all at once). */
      inputCount: number;
      /** The largest input: the worker must accept a field that long. */
      largestInputBytes: number;
      /** Explicit flags only: a flag left at its default is not given. */
      batchSize?: number | undefined;
      responseTimeoutSeconds?: number | undefined;
      python?: string | undefined;
    };

/** The options a model runs with (what ModelRuntime takes, besides the model and the hooks). */
export interface ServingOptions {
  batchSize: number;
  maxBatchDelayMs: number;
  /** Seconds; predict's --timeout may be fractional. */
  responseTimeoutSeconds: number;
  jobQueueSize: number;
  minWorkers: number;
  maxWorkers: number;
  python?: string;
  decodeInputRequest?: boolean;
  maxRequestBytes?: number;
  maxResponseBytes?: number;
}

/** The layers' inputs: the server passes its ServerConfig (config.properties), predict has none. */
export type ServingInputs =
  | {
      /** The archive's parsed model-config.yaml (OpenedModel.config), or null. */
      modelConfig: Record<string, unknown> | null;
      server: ServerServingDefaults;
      request: Extract<ServingRequest, { caller: 'register' | 'startup' | 'snapshot' }>;
    }
  | { modelConfig: Record<string, unknown> | null; server?: undefined; request: Extract<ServingRequest, { caller: 'predict' }> };

type Layer = 'request' | 'model-config' | 'server' | 'default';

/** The first table above, as data. */
const ORDER: Record<ServingRequest['caller'], readonly Layer[]> = {
  register: ['model-config', 'request', 'server', 'default'],
  startup: ['model-config', 'server', 'default'],
  snapshot: ['request', 'model-config', 'server', 'default'],
  predict: ['request', 'model-config', 'default'],
};

interface LayerValues {
  batchSize?: number | undefined;
  maxBatchDelayMs?: number | undefined;
  responseTimeoutSeconds?: number | undefined;
  jobQueueSize?: number | undefined;
  workers?: { min: number; max: number } | undefined;
  python?: string | undefined;
  decodeInputRequest?: boolean | undefined;
  maxRequestBytes?: number | undefined;
  maxResponseBytes?: number | undefined;
}

/**
 * The numbers of the last layer: MMS's register defaults (batch 1, 100 ms) and predict's (100 ms, 120 s, a queue of
 * 100, one worker). ModelRuntime uses the same ones for library callers that leave an option out.
 */
export const SERVING_DEFAULTS = { batchSize: 1, maxBatchDelayMs: 100, responseTimeoutSeconds: 120, jobQueueSize: 100, workers: 1 } as const;

const same = (n: number | undefined): { min: number; max: number } | undefined => (n === undefined ? undefined : { min: n, max: n });

/** The second table above, as data: what each layer sets for this caller. */
function layers(inputs: ServingInputs): Record<Layer, LayerValues> {
  const { request: r, server: s } = inputs;
  const request: LayerValues =
    r.caller === 'register'
      ? {
          batchSize: r.batchSize,
          maxBatchDelayMs: r.maxBatchDelayMs,
          // MMS: a response_timeout of 0 or less means the server default
          responseTimeoutSeconds: (r.responseTimeoutSeconds ?? 0) > 0 ? r.responseTimeoutSeconds : undefined,
          workers: same(r.initialWorkers),
        }
      : r.caller === 'predict'
        ? {
            batchSize: r.batchSize,
            responseTimeoutSeconds: r.responseTimeoutSeconds,
            python: r.python,
            maxRequestBytes: r.largestInputBytes,
          }
        : r.caller === 'snapshot'
          ? {
              batchSize: r.batchSize,
              maxBatchDelayMs: r.maxBatchDelayMs,
              responseTimeoutSeconds: (r.responseTimeoutSeconds ?? 0) > 0 ? r.responseTimeoutSeconds : undefined,
              workers: { min: r.minWorkers, max: r.maxWorkers },
            }
          : {};
  const server: LayerValues = s
    ? {
        responseTimeoutSeconds: s.defaultResponseTimeoutSeconds,
        jobQueueSize: s.jobQueueSize,
        workers: same(r.caller === 'startup' ? s.startupWorkersPerModel : s.defaultWorkersPerModel),
        python: s.python,
        decodeInputRequest: s.decodeInputRequest,
        maxRequestBytes: s.maxRequestSize,
        maxResponseBytes: s.maxResponseSize,
      }
    : {};
  const defaults: LayerValues =
    r.caller === 'predict'
      ? {
          batchSize: r.inputCount,
          maxBatchDelayMs: SERVING_DEFAULTS.maxBatchDelayMs,
          responseTimeoutSeconds: SERVING_DEFAULTS.responseTimeoutSeconds,
          jobQueueSize: SERVING_DEFAULTS.jobQueueSize,
          workers: same(SERVING_DEFAULTS.workers),
        }
      : { batchSize: SERVING_DEFAULTS.batchSize, maxBatchDelayMs: SERVING_DEFAULTS.maxBatchDelayMs };
  return { request, 'model-config': modelConfigSettings(inputs.modelConfig), server, default: defaults };
}

/** The decision, and the part of it model-config.yaml made. */
export interface ResolvedServing {
  options: ServingOptions;
  /** The settings model-config.yaml decided, with the file's values (what the server logs). */
  fromModelConfig: ModelConfigSettings;
}

/** Applies the precedence tables above. Throws nothing: every value has a default or a server setting. */
export function resolveServingOptions(inputs: ServingInputs): ResolvedServing {
  const byLayer = layers(inputs);
  const order = ORDER[inputs.request.caller];
  const fromModelConfig: ModelConfigSettings = {};
  const pick = <K extends keyof LayerValues>(key: K): LayerValues[K] => {
    for (const layer of order) {
      const v = byLayer[layer][key];
      if (v === undefined) continue;
      if (layer === 'model-config') (fromModelConfig as LayerValues)[key] = v;
      return v;
    }
    return undefined;
  };

  let batchSize = Math.max(1, pick('batchSize') ?? 1);
  const maxBatchDelayMs = Math.max(0, pick('maxBatchDelayMs') ?? 0);
  const responseTimeoutSeconds = pick('responseTimeoutSeconds')!;
  let jobQueueSize = pick('jobQueueSize')!;
  const workers = pick('workers')!;
  let minWorkers = Math.max(0, workers.min);
  let maxWorkers = Math.max(minWorkers, workers.max);
  const r = inputs.request;
  if (r.caller === 'predict') {
    batchSize = Math.min(batchSize, r.inputCount);
    jobQueueSize = Math.max(jobQueueSize, r.inputCount);
    minWorkers = maxWorkers = Math.min(minWorkers, Math.ceil(r.inputCount / batchSize));
  }
  const options: ServingOptions = { batchSize, maxBatchDelayMs, responseTimeoutSeconds, jobQueueSize, minWorkers, maxWorkers };
  for (const key of ['python', 'decodeInputRequest', 'maxRequestBytes', 'maxResponseBytes'] as const) {
    const v = pick(key);
    if (v !== undefined) (options as unknown as Record<string, unknown>)[key] = v;
  }
  return { options, fromModelConfig };
}

/** `Model m: batchSize 8, workers 2..4 from model-config.yaml`: what the file decided, or null when nothing. */
export function modelConfigNote(model: Pick<OpenedModel, 'name' | 'manifest'>, fromModelConfig: ModelConfigSettings): string | null {
  const { workers, ...values } = fromModelConfig;
  // In modelConfigSettings' key order, whatever order the precedence picked them in.
  const parts = (['batchSize', 'maxBatchDelayMs', 'responseTimeoutSeconds', 'jobQueueSize'] as const)
    .filter((k) => values[k] !== undefined)
    .map((k) => `${k} ${String(values[k])}`);
  if (workers) parts.push(`workers ${workers.min}..${workers.max}`);
  const file = String(model.manifest?.model.configFile ?? 'the model config');
  return parts.length > 0 ? `Model ${model.name}: ${parts.join(', ')} from ${file}` : null;
}
