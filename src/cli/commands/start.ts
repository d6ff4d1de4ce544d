import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { MarError } from '../../errors.js';
import type { loadConfig as LoadConfig, LoadConfigOptions } from '../../server/config.js';
import type { DialectName } from '../../server/dialects/index.js';
import type { ModelServer as ModelServerClass } from '../../server/server.js';
import { packagePath } from '../../util/package-info.js';
import { takeEarlyStart } from '../early-spawn.js';

export interface StartOptions {
  modelStore?: string;
  models?: string[];
  config?: string;
  foreground?: boolean;
  start?: boolean;
  stop?: boolean;
  pidFile?: string;
  logFile?: string;
  // --- TorchServe dialect (issue 12) ---
  /** mms (default) or torchserve (--ts-config, the torchserve command). */
  dialect?: DialectName;
  /** TorchServe's --ncs / --no-config-snapshots. */
  noConfigSnapshots?: boolean;
  /** TorchServe's --disable-token-auth. */
  disableTokenAuth?: boolean;
  /** TorchServe's --enable-model-api. */
  enableModelApi?: boolean;
  /** The stop command the messages show (default: `model-server --stop --pid-file <pid file>`). */
  stopCommand?: string;
  /** config.properties keys set by the caller (the container entrypoint's KServe mapping); they win over file and env. */
  properties?: Readonly<Record<string, string>>;
  /** Lines the server logs first, in its log format (what the entrypoint applied). */
  notes?: readonly string[];
}

const PID_FILE_NAME = '.model_server.pid';

/**
 * The server's modules, loaded by runStart: the other commands of the same CLI (predict, cache) never pay for
 * loading them (one-shot predict's start time).
 */
let server: { loadConfig: typeof LoadConfig; ModelServer: typeof ModelServerClass } | null = null;

async function loadServerModules(): Promise<NonNullable<typeof server>> {
  if (server === null) {
    const [{ loadConfig }, { ModelServer }] = await Promise.all([import('../../server/config.js'), import('../../server/server.js')]);
    server = { loadConfig, ModelServer };
  }
  return server;
}

function loadConfig(options: LoadConfigOptions): ReturnType<typeof LoadConfig> {
  return server!.loadConfig(options);
}

/** The pid file: --pid-file, else <model_store or cwd>/.model_server.pid. */
function pidFilePath(o: StartOptions): string {
  if (o.pidFile) return resolve(o.pidFile);
  let store = o.modelStore;
  if (store === undefined) {
    try {
      store = loadConfig(configOptions(o)).modelStore ?? undefined;
    } catch {
      store = undefined;
    }
  }
  return join(store ? resolve(store) : process.cwd(), PID_FILE_NAME);
}

/** What loadConfig is given for `o` (the early entry, early-spawn.ts, reads the config with it too). */
export function configOptions(o: StartOptions): LoadConfigOptions {
  return {
    ...(o.config !== undefined ? { configFile: o.config } : {}),
    ...(o.modelStore !== undefined ? { modelStore: o.modelStore } : {}),
    ...(o.models !== undefined ? { models: o.models.flatMap((m) => m.split(',')) } : {}),
    ...(o.dialect !== undefined ? { dialect: o.dialect } : {}),
    ...(o.noConfigSnapshots ? { noConfigSnapshots: true } : {}),
    ...(o.disableTokenAuth ? { disableTokenAuth: true } : {}),
    ...(o.enableModelApi ? { enableModelApi: true } : {}),
    ...(o.properties !== undefined ? { properties: o.properties } : {}),
  };
}

/** The flags that carry the dialect and TorchServe's switches to the background server. */
function dialectArgs(o: StartOptions): string[] {
  const args: string[] = [];
  if (o.dialect !== undefined) args.push('--dialect', o.dialect);
  if (o.noConfigSnapshots) args.push('--ncs');
  if (o.disableTokenAuth) args.push('--disable-token-auth');
  if (o.enableModelApi) args.push('--enable-model-api');
  return args;
}

function readPid(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A live model server: after a crash the pid in a stale pid file may belong to another program by now,
 * which --stop must not signal and --start must not take for a running server. Without /proc: alive is enough.
 */
function isServerProcess(pid: number): boolean {
  if (!isAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync('/proc/self');
  }
  return cmdline.includes('model-server') || cmdline.includes('torchserve');
}

function writePidFile(file: string, o: StartOptions): void {
  const existing = readPid(file);
  if (existing !== null && existing !== process.pid && isServerProcess(existing)) {
    throw new MarError(
      'OUTPUT_EXISTS',
      `Model server is already running (pid ${existing}, pid file ${file}); stop it with: ${stopHint(file, o)}`,
    );
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`);
  renameSync(tmp, file);
}

function removePidFile(file: string): void {
  if (readPid(file) === process.pid) {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
  }
}

/** Runs the server in this process until SIGTERM/SIGINT; resolves after a graceful stop. */
async function runForeground(o: StartOptions): Promise<void> {
  // The process's early entry (early-spawn.ts) may have read the same config and spawned its workers already.
  const taken = await takeEarlyStart(configOptions(o));
  const config = taken?.config ?? (await import('../../server/config.js')).loadConfig(configOptions(o));
  // The startup models' interpreters start while the server's modules load and the archives are extracted.
  const early = taken?.group ?? (await import('../../server/startup-prespawn.js')).prespawnStartupWorkers(config);
  try {
    await loadServerModules();
    await serveForeground(o, config, async (log) => {
      const unused = await (await early).discard();
      if (unused > 0) log(`${unused} worker process(es) started ahead of their model were not used; stopped them`);
    });
  } finally {
    await (await early).discard();
  }
}

/** Runs the server until it is stopped; `started` runs once the startup models are loaded (or failed). */
async function serveForeground(
  o: StartOptions,
  config: ReturnType<typeof LoadConfig>,
  started: (log: (line: string) => void) => Promise<void>,
): Promise<void> {
  const pidFile = o.pidFile || o.start ? pidFilePath(o) : null;
  if (pidFile) writePidFile(pidFile, o);
  const modelServer = new server!.ModelServer({ config });
  const log = modelServer.logger.info;
  for (const note of o.notes ?? []) log(note);
  let signalled = 0;
  let onSignal!: (sig: NodeJS.Signals) => void;
  const stopped = new Promise<void>((resolveStop) => {
    onSignal = (sig) => {
      signalled++;
      if (signalled > 1) {
        // The runtime's exit hook SIGKILLs every worker process, starting ones included.
        log(`${sig} received again: exiting now`);
        if (pidFile) removePidFile(pidFile);
        process.exit(130);
      }
      log(`${sig} received: shutting down (in-flight requests get up to ${config.shutdownTimeoutSeconds} s)`);
      void modelServer.stop().then(resolveStop, (err: unknown) => {
        log(`error during shutdown: ${String(err)}`);
        resolveStop();
      });
    };
  });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const listeners = await modelServer.start();
    await started(log);
    process.send?.({ type: 'ready', listeners, pid: process.pid });
    await stopped;
    log('Model server stopped.');
  } catch (err) {
    process.send?.({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    await modelServer.stop(0);
    throw err;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (pidFile) removePidFile(pidFile);
    if (process.connected) process.disconnect();
  }
}

/** The exact `--stop` command for a pid file: the default location depends on --model-store and the cwd. */
function stopHint(pidFile: string, o: StartOptions = {}): string {
  return o.stopCommand ?? `model-server --stop --pid-file ${pidFile}`;
}

/** --start: a detached foreground server whose logs go to a file; returns once it listens (or failed). */
async function runBackground(o: StartOptions): Promise<void> {
  // a bad config fails here with its own one-line message, not as "the server exited with code 1"
  loadConfig(configOptions(o));
  const pidFile = pidFilePath(o);
  const existing = readPid(pidFile);
  if (existing !== null && isServerProcess(existing)) {
    throw new MarError('OUTPUT_EXISTS', `Model server is already running (pid ${existing}); stop it with: ${stopHint(pidFile, o)}`);
  }
  const logFile = o.logFile ? resolve(o.logFile) : join(dirname(pidFile), 'model_server.log');
  const args = [packagePath('bin', 'model-server.js'), 'start', '--foreground', '--start', '--pid-file', pidFile];
  if (o.modelStore !== undefined) args.push('--model-store', o.modelStore);
  if (o.config !== undefined) args.push('--config', resolve(o.config));
  for (const m of o.models ?? []) args.push('--models', m);
  args.push(...dialectArgs(o));
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd, 'ipc'] });
  closeSync(fd);
  const outcome = await new Promise<{ type: string; message?: string; listeners?: Array<{ api: string; url: string }> }>(
    (resolveOutcome) => {
      child.once('message', (m) => resolveOutcome(m as { type: string }));
      child.once('exit', (code) => resolveOutcome({ type: 'failed', message: `the server exited with code ${code}` }));
    },
  );
  if (outcome.type !== 'ready') {
    throw new MarError('WORKER_START_FAILED', `Model server failed to start: ${outcome.message ?? 'unknown error'} (log: ${logFile})`);
  }
  child.disconnect();
  child.unref();
  for (const l of outcome.listeners ?? []) process.stdout.write(`${l.api} API: ${l.url}\n`);
  process.stdout.write(`Model server started (pid ${child.pid}); logs: ${logFile}; stop with: ${stopHint(pidFile, o)}\n`);
}

/** --stop: SIGTERM to the pid in the pid file, then wait until that process is gone. */
async function runStop(o: StartOptions): Promise<void> {
  const pidFile = pidFilePath(o);
  const pid = readPid(pidFile);
  if (pid === null || !isServerProcess(pid)) {
    if (pid !== null) unlinkSync(pidFile);
    throw new MarError('INPUT_NOT_FOUND', `Model server is not currently running (no live pid in ${pidFile}).`);
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 120_000;
  // the server is not our child, so polling is the only way to see it go
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new MarError('REQUEST_TIMEOUT', `Model server (pid ${pid}) did not stop within 120 s.`);
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stdout.write('Model server stopped.\n');
}

/** What `model-server start` and `torchserve` do with their options: --stop, --start (background), or the foreground. */
export async function runStart(o: StartOptions): Promise<void> {
  if (!o.stop && !(o.start && !o.foreground)) return runForeground(o);
  await loadServerModules();
  if (o.stop) return runStop(o);
  return runBackground(o);
}

/** The start command's options as commander gives them (the early entry reads the same shape from argv). */
export type StartFlags = StartOptions & { mmsConfig?: string; tsConfig?: string; configSnapshots?: boolean };

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the MMS-compatible model server (Inference API :8080, Management API :8081)')
    .option('--model-store <dir>', 'model store directory (overrides model_store)')
    .option('--models <name=url...>', 'models to load at startup: [name=]file.mar ..., or ALL (overrides load_models)')
    .option('--config <file>', 'config.properties file (default: $MMS_CONFIG_FILE, else ./config.properties)')
    .option('--mms-config <file>', 'alias of --config')
    .option('--foreground', 'run in the foreground (the default unless --start)')
    .option('--start', 'start in the background with a pid file (like multi-model-server --start)')
    .option('--stop', 'stop the server started with --start (reads the pid file)')
    .option('--pid-file <file>', 'pid file (default: <model_store or cwd>/.model_server.pid)')
    .option('--log-file <file>', 'log file for --start (default: model_server.log beside the pid file)')
    .option('--ts-config <file>', "TorchServe's config.properties: TorchServe's defaults, texts and status codes (docs/torchserve.md)")
    .option('--dialect <name>', 'mms (default) or torchserve (implied by --ts-config)')
    .option('--ncs, --no-config-snapshots', 'TorchServe: do not write config snapshots')
    .option('--dt, --disable-token-auth', 'TorchServe: requests need no token')
    .option('--enable-model-api', 'TorchServe: allow registering and unregistering models')
    .action(async (opts: StartFlags) => runStart(startOptions(opts)));
}

/** Checks and merges the aliases: --mms-config is --config; --ts-config is --config in TorchServe's dialect. */
export function startOptions(opts: StartFlags): StartOptions {
  const { mmsConfig, tsConfig, configSnapshots, ...o } = opts;
  if (mmsConfig && !o.config) o.config = mmsConfig;
  if (o.dialect !== undefined && o.dialect !== 'mms' && o.dialect !== 'torchserve') {
    throw new MarError('USAGE', `--dialect must be mms or torchserve, got ${JSON.stringify(o.dialect)}`);
  }
  if (tsConfig !== undefined) {
    if (o.config !== undefined) throw new MarError('USAGE', '--ts-config and --config/--mms-config name two config files; pass one');
    if (o.dialect === 'mms') throw new MarError('USAGE', '--ts-config selects the torchserve dialect; drop --dialect mms');
    o.config = tsConfig;
    o.dialect = 'torchserve';
  }
  // commander's --no-config-snapshots (alias --ncs) sets configSnapshots=false
  if (configSnapshots === false) o.noConfigSnapshots = true;
  return o;
}

/** `model-server --start ...` / `model-server --stop` (MMS style) mean `model-server start --start|--stop ...`. */
export function rewriteMmsArgs(argv: readonly string[]): string[] {
  const first = argv.findIndex((a) => a !== '--debug');
  if (first >= 0 && (argv[first] === '--start' || argv[first] === '--stop')) {
    return [...argv.slice(0, first), 'start', ...argv.slice(first)];
  }
  return [...argv];
}
