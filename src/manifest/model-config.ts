import { parse as parseYaml } from 'yaml';
import { MarError } from '../errors.js';

type Kind = 'int' | 'bool' | 'string' | 'int[]' | 'object';

/** The keys TorchServe's ModelConfig reads from a model-config.yaml, with their types. */
const MODEL_CONFIG_KEYS: Record<string, Kind> = {
  minWorkers: 'int',
  maxWorkers: 'int',
  batchSize: 'int',
  maxBatchDelay: 'int',
  responseTimeout: 'int',
  startupTimeout: 'int',
  deviceType: 'string',
  parallelType: 'string',
  parallelLevel: 'int',
  deviceIds: 'int[]',
  torchrun: 'object',
  maxRetryTimeoutInSec: 'int',
  clientTimeoutInMills: 'int',
  jobQueueSize: 'int',
  useJobTicket: 'bool',
  sequenceMaxIdleMSec: 'int',
  sequenceTimeoutMSec: 'int',
  maxSequenceJobQueueSize: 'int',
  maxNumSequence: 'int',
  continuousBatching: 'bool',
  sequenceBatching: 'bool',
  asyncCommunication: 'bool',
  useVenv: 'bool',
};

function matches(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case 'int':
      return Number.isInteger(v);
    case 'bool':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'int[]':
      return Array.isArray(v) && v.every((x) => Number.isInteger(x));
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
  }
}

export type ModelConfig = Record<string, unknown>;

/** Problems with a parsed config: wrong types for keys TorchServe reads. Unknown keys belong to handlers. */
export function checkModelConfig(config: unknown): string[] {
  if (config === null || config === undefined) return [];
  if (typeof config !== 'object' || Array.isArray(config)) return ['the top level must be a mapping of keys to values'];
  const problems: string[] = [];
  for (const [key, kind] of Object.entries(MODEL_CONFIG_KEYS)) {
    const v = (config as Record<string, unknown>)[key];
    if (v !== undefined && !matches(kind, v)) {
      problems.push(
        `${key} must be ${kind === 'int[]' ? 'a list of integers' : kind === 'int' ? 'an integer' : `a ${kind}`}, got ${JSON.stringify(v)}`,
      );
    }
  }
  for (const key of ['minWorkers', 'maxWorkers', 'batchSize', 'maxBatchDelay', 'responseTimeout', 'jobQueueSize']) {
    const v = (config as Record<string, unknown>)[key];
    if (Number.isInteger(v) && (v as number) < 0) problems.push(`${key} must not be negative, got ${v}`);
  }
  return problems;
}

/** Parses model-config YAML text; returns the config or throws CONFIG_INVALID naming the file and the problem. */
export function parseModelConfig(text: string, source: string): ModelConfig {
  let config: unknown;
  try {
    config = parseYaml(text);
  } catch (err) {
    // The yaml library ends its first line with ':' before a code excerpt we do not print.
    const msg = (err as Error).message.split('\n')[0]!.replace(/:\s*$/, '');
    throw new MarError('CONFIG_INVALID', `${source} is not valid YAML: ${msg}`, { cause: err });
  }
  const problems = checkModelConfig(config);
  if (problems.length) throw new MarError('CONFIG_INVALID', `${source}: ${problems.join('; ')}`, { details: problems });
  return (config ?? {}) as ModelConfig;
}
