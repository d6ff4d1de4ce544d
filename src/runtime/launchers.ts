/**
 * Command lines and environments for worker processes, kept apart from process management so they can be
 * read and tested on their own. The Python layout follows MMS (docs/worker-protocol.md §1.1): PYTHONPATH =
 * <handler dir>:<existing PYTHONPATH>:<model dir>:<compat dir>, cwd = model dir.
 */

import { availableParallelism } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { EntryPoint } from '../handler/entry-point.js';
import { type HandlerLanguage, launcherOf, resolveRuntime } from '../handler/runtimes.js';
import { packagePath, TOOL_VERSION } from '../util/package-info.js';
import { conventionalCacheDir } from './cache/location.js';
import { DEFAULT_MAX_FRAME_BYTES } from './protocol.js';
import { defaultPython } from './python-env.js';
import { resolvePython } from './python-resolve.js';

/** Where the worker listens: a unix socket path or 127.0.0.1:port. */
export type WorkerSocket = { type: 'unix'; path: string } | { type: 'tcp'; host: string; port: number };

export interface LaunchSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface LaunchOptions {
  runtime: string;
  modelDir: string;
  entry: EntryPoint;
  socket: WorkerSocket;
  /** Interpreter for python/python3 (default: defaultPython(), i.e. $MAR_PYTHON or 'python3' on PATH). */
  python?: string;
  /** How many workers the model runs: a Python worker's torch gets max(1, cores / workers) threads (MAR_TORCH_THREADS). */
  workers?: number;
  /** MMS_DECODE_INPUT_REQUEST: decode bodies by content type (default true). */
  decodeInputRequest?: boolean;
  /** Base environment (default process.env); the launcher's variables are layered on top. */
  env?: NodeJS.ProcessEnv;
  /** Largest length field the Python worker accepts in a message (its own default: 256 MiB). */
  maxFieldBytes?: number;
  /**
   * False when nobody reads the worker's [METRICS] lines: the worker does not print them. True (default): a successful
   * PREDICT reply carries its batch's lines in its message (workerMetricsEnv). `sampled`: the same, for a reader that
   * keeps only a gauge's latest value (Prometheus): the worker's own PredictionTime is sent at most every 100 ms.
   */
  metrics?: boolean | 'sampled';
}

/** The worker's field cap for a given max request size: some slack (never below MMS's default), int32 at most. */
export function workerFieldCap(maxRequestBytes: number): number {
  return Math.min(Math.max(Math.ceil(maxRequestBytes) + 65_536, DEFAULT_MAX_FRAME_BYTES), 0x7fffffff);
}

/**
 * Where a worker puts the [METRICS] lines of a batch (docs/worker-protocol.md §4): `0` when the frontend drops them (a
 * write per batch in the worker and a parse here saved), `reply` when it reads them: the lines of a successful PREDICT
 * follow the first line of the reply's message rather than going to stdout, which cost a write in the worker and a
 * pipe wake-up and read here per batch (a fifth of the batch-1 throughput). Other lines (LOAD, errors, the handler's
 * own prints) stay on stdout. `reply-sampled`: the same, but the worker's own PredictionTime goes at most every 100 ms
 * (the reader keeps only a gauge's latest value: building, sending and parsing it per batch cost ~14 µs of CPU).
 */
export const WORKER_METRICS_ENV = 'MAR_WORKER_METRICS';

function workerMetricsEnv(o: LaunchOptions): string {
  return o.metrics === false ? '0' : o.metrics === 'sampled' ? 'reply-sampled' : 'reply';
}

/** The Python worker's bytecode cache for its own modules (docs/worker-protocol.md §1.1). */
export const PYCACHE_ENV = 'MAR_WORKER_PYCACHE';

export const PYTHON_WORKER_SCRIPT = packagePath('src', 'runtime', 'python', 'mms_worker.py');
export const PYTHON_COMPAT_DIR = packagePath('src', 'runtime', 'python', 'compat');
/** node/worker.ts as one bundled file (scripts/build-bundle.js): a Node worker loads 1 module instead of 14 (~14 ms). */
export const NODE_WORKER_SCRIPT = packagePath('dist', 'bundle', 'node-worker.cjs');

function socketArgs(socket: WorkerSocket): string[] {
  return socket.type === 'unix'
    ? ['--sock-type', 'unix', '--sock-name', socket.path]
    : ['--sock-type', 'tcp', '--host', socket.host, '--port', String(socket.port)];
}

/** The handler's directory as MMS puts it first on PYTHONPATH: relative to the model dir, or absolute. */
export function handlerDir(modelDir: string, entry: EntryPoint): string | null {
  if (!entry.dir || entry.dir === '.') return null;
  return isAbsolute(entry.dir) ? entry.dir : resolve(modelDir, entry.dir);
}

export function pythonLaunch(o: LaunchOptions): LaunchSpec {
  const base = o.env ?? process.env;
  const parts: string[] = [];
  const hdir = handlerDir(o.modelDir, o.entry);
  if (hdir) parts.push(hdir);
  if (base['PYTHONPATH']) parts.push(base['PYTHONPATH']);
  parts.push(o.modelDir, PYTHON_COMPAT_DIR);
  const env: NodeJS.ProcessEnv = {
    ...base,
    PYTHONPATH: parts.join(delimiter),
    MMS_DECODE_INPUT_REQUEST: o.decodeInputRequest === false ? 'false' : 'true',
    MAR_SERVER_VERSION: TOOL_VERSION,
    // Worker output is read line by line; unbuffered avoids lines stuck in a pipe buffer.
    PYTHONUNBUFFERED: base['PYTHONUNBUFFERED'] ?? '1',
    OMP_NUM_THREADS: base['OMP_NUM_THREADS'] ?? '1',
  };
  if (o.maxFieldBytes !== undefined) env['MAR_WORKER_MAX_FIELD_BYTES'] = String(o.maxFieldBytes);
  // where the worker caches its own modules' bytecode (_mar_worker/bytecode.py): ~10 ms of its start; '' turns it off
  env[PYCACHE_ENV] = base[PYCACHE_ENV] ?? join(dirname(conventionalCacheDir(base)), 'pycache');
  env[WORKER_METRICS_ENV] = workerMetricsEnv(o);
  // The worker's share of the cores for torch, unless the user chose with OMP_NUM_THREADS (_mar_worker/torch_env.py),
  // and idle OpenMP threads that sleep: a spinning one waits out a partner that the frontend or another worker has
  // preempted (resnet18, batch 1, 2 threads on 2 busy cores: 1.1 images/s spinning, 10.4 passive, 11.3 with 1 thread).
  if (base['OMP_NUM_THREADS'] === undefined) {
    env['MAR_TORCH_THREADS'] = String(Math.max(1, Math.floor(availableParallelism() / Math.max(1, o.workers ?? 1))));
    env['OMP_WAIT_POLICY'] = base['OMP_WAIT_POLICY'] ?? 'PASSIVE';
  }
  // a version manager's shim is resolved here rather than run per spawn (python-resolve.ts)
  const python = resolvePython(o.python ?? defaultPython(base), o.modelDir, base);
  Object.assign(env, python.env);
  return { command: python.command, args: [PYTHON_WORKER_SCRIPT, ...socketArgs(o.socket)], env, cwd: o.modelDir };
}

export function nodeLaunch(o: LaunchOptions): LaunchSpec {
  const base = o.env ?? process.env;
  const env: NodeJS.ProcessEnv = {
    ...base,
    MMS_DECODE_INPUT_REQUEST: o.decodeInputRequest === false ? 'false' : 'true',
    MAR_SERVER_VERSION: TOOL_VERSION,
  };
  env[WORKER_METRICS_ENV] = workerMetricsEnv(o);
  return { command: process.execPath, args: [NODE_WORKER_SCRIPT, ...socketArgs(o.socket)], env, cwd: o.modelDir };
}

/** The launcher of each handler language; the runtime table (handler/runtimes.ts) says which runtime uses which. */
const LAUNCHERS: Record<HandlerLanguage, (o: LaunchOptions) => LaunchSpec> = { python: pythonLaunch, node: nodeLaunch };

/** The command line of a worker for `o.runtime`; throws RUNTIME_UNSUPPORTED for a runtime we do not run. */
export function launchSpec(o: LaunchOptions): LaunchSpec {
  return LAUNCHERS[launcherOf(resolveRuntime(o.runtime))](o);
}

// ---------------------------------------------------------------------------------------------------------------
// A worker spawned before its model is on disk (worker-prespawn.ts): what it may learn after spawn.

/** The flag that makes a worker read its DeferredSettings as one JSON line on stdin once the frontend connects. */
export const DEFERRED_SETTINGS_FLAG = '--settings-from-stdin';
/** A pre-spawned worker waits this long for its model (an extraction), not the usual 30 s. */
export const PRESPAWN_ACCEPT_TIMEOUT_S = 120;
/**
 * The only environment a worker reads after its start (the Python worker: sys.path is rebuilt, torch's threads are
 * set at LOAD); any other difference means a fresh spawn.
 */
const DEFERRABLE_ENV: ReadonlySet<string> = new Set(['PYTHONPATH', 'MAR_TORCH_THREADS']);

/** What a pre-spawned worker is told when it is adopted: its model's cwd and environment (null: unset the key). */
export interface DeferredSettings {
  cwd: string;
  env: Record<string, string | null>;
}

/**
 * The command line of a worker spawned before its model dir exists: launchSpec's, for `standInDir` as the model
 * dir and no handler dir, reading the rest (deferredSettings) on stdin.
 */
export function prespawnSpec(o: Omit<LaunchOptions, 'modelDir' | 'entry'>, standInDir: string): LaunchSpec {
  const spec = launchSpec({
    ...o,
    modelDir: standInDir,
    entry: { raw: '', dir: '', module: '', functionName: 'handle', hasExplicitFunction: false },
  });
  spec.args.push(DEFERRED_SETTINGS_FLAG, '--accept-timeout', String(PRESPAWN_ACCEPT_TIMEOUT_S));
  return spec;
}

const pathEntries = (value: string | undefined): string[] => (value === undefined ? [] : value.split(delimiter));

/**
 * What the worker of `real` (launchSpec for the model) still needs when the pre-spawned `early` (prespawnSpec)
 * is adopted in its place, or null when `early` cannot stand in for it: another interpreter, script or socket kind,
 * or an environment that differs beyond the deferrable keys.
 */
export function deferredSettings(early: LaunchSpec, real: LaunchSpec): DeferredSettings | null {
  if (early.command !== real.command || early.args[0] !== real.args[0] || early.args[2] !== real.args[2]) return null;
  const env: Record<string, string | null> = {};
  for (const key of new Set([...Object.keys(early.env), ...Object.keys(real.env)])) {
    const want = real.env[key];
    if (want === early.env[key]) continue;
    if (!DEFERRABLE_ENV.has(key)) return null;
    env[key] = want ?? null;
  }
  // an empty PYTHONPATH element means something to the interpreter at its start only
  for (const value of [early.env['PYTHONPATH'], real.env['PYTHONPATH']]) if (pathEntries(value).includes('')) return null;
  return { cwd: real.cwd, env };
}

/** Socket path inside a private directory; kept short because unix socket paths are limited to ~107 bytes. */
export function unixSocketPath(privateDir: string): string {
  return join(privateDir, 'w.sock');
}
