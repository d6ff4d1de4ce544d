/**
 * The first thing `model-server`, `torchserve` and `model-server-entrypoint` do (their bin/ launchers run it before
 * they load commander and the server): for the usual command lines of `start` (foreground), `torchserve --foreground`,
 * the container entrypoint and `predict`, the workers of the startup models or of predict's model are spawned here, through the same config reading and prespawn as the commands use, and handed
 * to the command when it gets there (takeEarlyStart, takeEarlyPredict): the interpreter starts tens of ms sooner.
 *
 * This reader knows only the flags that decide a spawn and those that cannot change it; a command line with
 * anything else (another command, an unknown flag, --stop, a background --start, stdin input) is left to the CLI, which spawns
 * the workers itself as before. The command checks that what it parsed gives the same spawn key; if not, or if the
 * command never takes them (a usage error), the workers are discarded (discardEarlySpawn).
 */

import { statSync } from 'node:fs';
import type { PrespawnGroup } from '../runtime/worker-prespawn.js';
import type { LoadConfigOptions, ServerConfig } from '../server/config.js';
import { configOptions, type StartFlags, type StartOptions, startOptions } from './commands/start.js';
import { type TorchServeFlags, torchServeStartOptions } from './commands/torchserve-options.js';
import type { EntrypointFlags } from './entrypoint-plan.js';

/** What predict's workers depend on: the model, the overrides that choose how they launch, and the inputs' sizes. */
export interface PredictSpawnKey {
  model: string;
  runtime?: string | undefined;
  python?: string | undefined;
  batchSize?: number | undefined;
  timeout?: number | undefined;
  cacheDir?: string | undefined;
  sizes: number[];
}

type Early =
  | { command: 'start'; key: string; config: ServerConfig; group: Promise<PrespawnGroup> }
  | { command: 'predict'; key: string; group: Promise<PrespawnGroup> };

let early: Early | null = null;

/** A flag of the command line: how many values it takes and where they go (null: ignored, it changes no spawn). */
type FlagSpec = { values: 0 | 1 | 'many'; key: string | null };

/** The flags every command that starts a server reads alike (model-server start, torchserve, the entrypoint). */
const SERVER_FLAGS: Record<string, FlagSpec> = {
  '--model-store': { values: 1, key: 'modelStore' },
  '--models': { values: 'many', key: 'models' },
  '--ts-config': { values: 1, key: 'tsConfig' },
  '--start': { values: 0, key: 'start' },
  '--foreground': { values: 0, key: 'foreground' },
  '--ncs': { values: 0, key: 'noConfigSnapshots' },
  '--no-config-snapshots': { values: 0, key: 'noConfigSnapshots' },
  '--dt': { values: 0, key: 'disableTokenAuth' },
  '--disable-token-auth': { values: 0, key: 'disableTokenAuth' },
  '--enable-model-api': { values: 0, key: 'enableModelApi' },
};

const START_FLAGS: Record<string, FlagSpec> = {
  ...SERVER_FLAGS,
  '--config': { values: 1, key: 'config' },
  '--mms-config': { values: 1, key: 'mmsConfig' },
  '--dialect': { values: 1, key: 'dialect' },
  '--pid-file': { values: 1, key: null },
  '--log-file': { values: 1, key: null },
  '--debug': { values: 0, key: null },
};

/** `torchserve`'s flags (torchserve-main.ts); --stop and --plugins-path are left to the command. */
const TORCHSERVE_FLAGS: Record<string, FlagSpec> = {
  ...SERVER_FLAGS,
  '--workflow-store': { values: 1, key: null },
  '--log-config': { values: 1, key: null },
  '--cpp-log-config': { values: 1, key: null },
};

/** `model-server-entrypoint`'s flags (entrypoint-main.ts); --healthcheck is left to the command (it starts nothing). */
const ENTRYPOINT_FLAGS: Record<string, FlagSpec> = { ...SERVER_FLAGS, '--model-dir': { values: 1, key: 'modelDir' } };

const PREDICT_FLAGS: Record<string, FlagSpec> = {
  '-i': { values: 1, key: 'input' },
  '--input': { values: 1, key: 'input' },
  '-d': { values: 1, key: 'data' },
  '--data': { values: 1, key: 'data' },
  '--runtime': { values: 1, key: 'runtime' },
  '--python': { values: 1, key: 'python' },
  '--batch-size': { values: 1, key: 'batchSize' },
  '--timeout': { values: 1, key: 'timeout' },
  '--cache-dir': { values: 1, key: 'cacheDir' },
  '--content-type': { values: 1, key: null },
  '--handler': { values: 1, key: null },
  '--model-name': { values: 1, key: null },
  '-H': { values: 1, key: null },
  '--header': { values: 1, key: null },
  '--json': { values: 0, key: null },
  '-q': { values: 0, key: null },
  '--quiet': { values: 0, key: null },
  '--debug': { values: 0, key: null },
};

interface Parsed {
  flags: Record<string, string[] | true>;
  /** Inputs in command-line order (predict): sizes come from them. */
  inputs: Array<{ kind: 'input' | 'data'; value: string }>;
  positionals: string[];
}

/** Reads `args` with `specs`; null for anything this reader does not know (the CLI's parser decides). */
function parseArgs(args: readonly string[], specs: Record<string, FlagSpec>): Parsed | null {
  const parsed: Parsed = { flags: {}, inputs: [], positionals: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      parsed.positionals.push(arg);
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = specs[name];
    if (spec === undefined) return null;
    const values: string[] = [];
    if (eq > 0) values.push(arg.slice(eq + 1));
    else if (spec.values === 1) {
      const next = args[++i];
      if (next === undefined || next.startsWith('-')) return null;
      values.push(next);
    } else if (spec.values === 'many') {
      while (i + 1 < args.length && !args[i + 1]!.startsWith('-')) values.push(args[++i]!);
    }
    if (values.length === 0 && spec.values !== 0) return null;
    if (values.length > 0 && spec.values === 0) return null;
    if (spec.key === null) continue;
    if (spec.key === 'input' || spec.key === 'data') {
      parsed.inputs.push({ kind: spec.key, value: values[0]! });
      continue;
    }
    const prior = parsed.flags[spec.key];
    if (spec.values === 0) parsed.flags[spec.key] = true;
    else if (spec.values === 'many') parsed.flags[spec.key] = [...(Array.isArray(prior) ? prior : []), ...values];
    else if (prior !== undefined) return null;
    else parsed.flags[spec.key] = values;
  }
  return parsed;
}

const one = (v: string[] | true | undefined): string | undefined => (Array.isArray(v) ? v[0] : undefined);

/**
 * Spawns the workers `argv` (model-server's arguments) will need, when this reader understands it; resolves once
 * they are spawned (or it decided not to). Never throws: the command reports whatever is wrong.
 */
export async function earlySpawn(
  argv: readonly string[],
  cli: 'model-server' | 'torchserve' | 'entrypoint' = 'model-server',
): Promise<void> {
  try {
    const args = argv.filter((a) => a !== '--debug');
    if (cli === 'torchserve') await earlyTorchServe(args);
    else if (cli === 'entrypoint') await earlyEntrypoint(args);
    else if (args[0] === 'start') await earlyStart(args.slice(1));
    else if (args[0] === 'predict') await earlyPredict(args.slice(1));
  } catch {
    // the command runs its own path and reports
  }
}

/** The flags of a parsed command line, as commander would give them (one value, or the list of a variadic flag). */
function flagsOf(parsed: Parsed): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed.flags)) flags[key] = key === 'models' || value === true ? value : value[0];
  return flags;
}

async function earlyStart(args: readonly string[]): Promise<void> {
  const parsed = parseArgs(args, START_FLAGS);
  if (parsed === null || parsed.positionals.length > 0) return;
  await earlyServer(startOptions(flagsOf(parsed) as StartFlags));
}

async function earlyTorchServe(args: readonly string[]): Promise<void> {
  const parsed = parseArgs(args, TORCHSERVE_FLAGS);
  if (parsed === null || parsed.positionals.length > 0) return;
  const { noConfigSnapshots, ...flags } = flagsOf(parsed);
  await earlyServer(torchServeStartOptions({ ...(flags as TorchServeFlags), ...(noConfigSnapshots ? { configSnapshots: false } : {}) }));
}

async function earlyEntrypoint(args: readonly string[]): Promise<void> {
  const parsed = parseArgs(args, ENTRYPOINT_FLAGS);
  // one positional at most: kserve-torchserve's runtime passes `torchserve` first
  if (parsed === null || parsed.positionals.length > 1) return;
  const { noConfigSnapshots, ...flags } = flagsOf(parsed);
  const { planEntrypoint } = await import('./entrypoint-plan.js');
  const plan = planEntrypoint({ ...(flags as EntrypointFlags), ...(noConfigSnapshots ? { configSnapshots: false } : {}) });
  await earlyServer(plan.start);
}

/** The startup workers of a server started with `o`, in this process (a background --start has its own entry). */
async function earlyServer(o: StartOptions): Promise<void> {
  if (o.start && !o.foreground) return;
  const options = configOptions(o);
  const [{ loadConfig }, { prespawnStartupWorkers }] = await Promise.all([
    import('../server/config.js'),
    import('../server/startup-prespawn.js'),
  ]);
  const config = loadConfig(options);
  if (config.loadModels.length === 0 && config.modelSnapshot === null) return;
  const group = prespawnStartupWorkers(config);
  early = { command: 'start', key: JSON.stringify(options), config, group };
  await group;
}

async function earlyPredict(args: readonly string[]): Promise<void> {
  const parsed = parseArgs(args, PREDICT_FLAGS);
  if (parsed === null || parsed.positionals.length !== 1 || parsed.inputs.length === 0) return;
  const sizes: number[] = [];
  for (const input of parsed.inputs) {
    if (input.kind === 'data') sizes.push(Buffer.byteLength(input.value, 'utf8'));
    else if (input.value === '-') return;
    else sizes.push(statSync(input.value).size);
  }
  const f = parsed.flags;
  const batchSize = one(f['batchSize']) === undefined ? undefined : Number(one(f['batchSize']));
  const timeout = one(f['timeout']) === undefined ? undefined : Number(one(f['timeout']));
  // the CLI refuses these with its own message
  if ((batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize >= 1)) || (timeout !== undefined && !(timeout > 0))) return;
  const key: PredictSpawnKey = {
    model: parsed.positionals[0]!,
    runtime: one(f['runtime']),
    python: one(f['python']),
    batchSize,
    timeout,
    cacheDir: one(f['cacheDir']),
    sizes,
  };
  const { prespawnPredictWorkers } = await import('../runtime/predict.js');
  const group = prespawnPredictWorkers(key.model, predictOptionsOf(key), sizes);
  early = { command: 'predict', key: JSON.stringify(key), group };
  await group;
}

/** The predict options a key stands for (what prespawnPredictWorkers reads). */
function predictOptionsOf(key: PredictSpawnKey) {
  return {
    ...(key.runtime !== undefined ? { runtime: key.runtime } : {}),
    ...(key.python !== undefined ? { python: key.python } : {}),
    ...(key.batchSize !== undefined ? { batchSize: key.batchSize } : {}),
    ...(key.timeout !== undefined ? { timeoutSeconds: key.timeout } : {}),
    ...(key.cacheDir !== undefined ? { cacheDir: key.cacheDir } : {}),
  };
}

async function take(command: Early['command'], key: string): Promise<Early | null> {
  const found = early;
  early = null;
  if (found === null) return null;
  if (found.command === command && found.key === key) return found;
  await (await found.group).discard();
  return null;
}

/** The config and workers the early entry read and spawned for these config options, or null (read and spawn them). */
export async function takeEarlyStart(options: LoadConfigOptions): Promise<{ config: ServerConfig; group: Promise<PrespawnGroup> } | null> {
  const found = await take('start', JSON.stringify(options));
  return found?.command === 'start' ? { config: found.config, group: found.group } : null;
}

/** The workers the early entry spawned for this predict run, or undefined (predict spawns them). */
export async function takeEarlyPredict(key: PredictSpawnKey): Promise<PrespawnGroup | undefined> {
  const found = await take('predict', JSON.stringify(key));
  return found === null ? undefined : await found.group;
}

/** Discards workers spawned early that no command took (a usage error, another command): the process can end. */
export async function discardEarlySpawn(): Promise<void> {
  const found = early;
  early = null;
  if (found !== null) await (await found.group).discard();
}
