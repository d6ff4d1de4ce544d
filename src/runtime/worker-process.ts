/**
 * One worker process (Python or Node) and its socket: spawn, wait for the "worker started" line, connect,
 * LOAD, then one PREDICT in flight at a time (MMS WorkerThread semantics, worker-protocol.md §1, §5.3, §6).
 * Every failure path ends the process: a WorkerProcess never leaves a child behind.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MarError } from '../errors.js';
import { ReplyDecoder } from './frame-decoder.js';
import { launchSpec, unixSocketPath, type WorkerSocket } from './launchers.js';
import { isWellFormedMetricLine, METRICS_PREFIX, parseMetricLine, type MetricLine } from './metrics.js';
import type { OpenedModel } from './model.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeLoad, encodePredict, type InferenceRequest, type WorkerReply } from './protocol.js';

export interface WorkerLogLine {
  modelName: string;
  workerId: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface WorkerExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type WorkerState = 'starting' | 'ready' | 'busy' | 'stopping' | 'dead';

export interface WorkerProcessOptions {
  /** Aborting it cancels a start that is still under way (e.g. a LOAD that hangs): the process is killed. */
  signal?: AbortSignal;
  /** Worker id, shown in logs as W-<id>. */
  id: string;
  model: OpenedModel;
  /** Sent in LOAD (context.system_properties.batch_size); at least 1. */
  batchSize: number;
  /** -1 (default) = CPU. */
  gpuId?: number;
  /** Python interpreter for python/python3 models (default 'python3' on PATH). */
  python?: string;
  /** Socket kind (default unix; tcp binds 127.0.0.1 on a free port). */
  sockType?: 'unix' | 'tcp';
  /** Wait for the "worker started" line and the connection (default 120000, MMS's 2 minutes). */
  startTimeoutMs?: number;
  /** Wait for the LOAD reply (default 120000). */
  loadTimeoutMs?: number;
  /** MMS_DECODE_INPUT_REQUEST (default true). */
  decodeInputRequest?: boolean;
  /** Base environment for the worker (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Receives every worker output line except the handshake and [METRICS] lines (default: stderr, prefixed). */
  log?: (line: WorkerLogLine) => void;
  /** Receives parsed [METRICS] lines (dropped if not given). */
  onMetric?: (metric: MetricLine) => void;
  /** Cap on any length field in a reply (default 6553500, MMS max_response_size). */
  maxResponseBytes?: number;
  /**
   * The largest request body the frontend sends (MMS max_request_size). The Python worker refuses a length field
   * over it plus slack instead of allocating it (a corrupt frame); unset, the worker's own cap is 256 MiB.
   */
  maxRequestBytes?: number;
}

const DEFAULT_START_TIMEOUT_MS = 120_000;
/** After the socket closes unexpectedly, how long the process gets to exit before we kill it. */
const DEATH_GRACE_MS = 1_000;
/** After 'exit' with a message in flight, how long the socket may take to deliver its last bytes. */
const DRAIN_GRACE_MS = 500;
/** After 'exit', how long to wait for the output pipes to close (a grandchild may hold them). */
const PIPE_CLOSE_GRACE_MS = 2_000;

/** A "line" longer than this is logged in pieces rather than buffered without bound. */
const MAX_LINE_CHARS = 64 * 1024;

const STARTED_LINES = new Set(['MMS worker started.', 'MXNet worker started.']);
const PID_LINE = /^\[PID\]\s?(\d+)$/;

/** The worker's field cap for a given max request size: some slack (never below MMS's default), int32 at most. */
export function workerFieldCap(maxRequestBytes: number): number {
  return Math.min(Math.max(Math.ceil(maxRequestBytes) + 65_536, DEFAULT_MAX_FRAME_BYTES), 0x7fffffff);
}

/** setTimeout fires at once for delays over 2^31-1 ms (and for Infinity): clamp; null = no timer. */
function timerDelay(ms: number | undefined): number | null {
  if (ms === undefined || Number.isNaN(ms) || ms === Infinity) return null;
  return Math.min(Math.max(ms, 1), 0x7fffffff);
}

function defaultLog(l: WorkerLogLine): void {
  process.stderr.write(`[${l.modelName} W-${l.workerId}] ${l.line}\n`);
}

/** Socket dirs of live workers, removed synchronously if this process exits without stopping them. */
const liveSockDirs = new Set<string>();
/** Worker processes not yet exited (starting ones included), killed if this process exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
let staleSwept = false;

const SOCK_DIR_PREFIX = 'mar-w-';

/** Whatever way this process ends (a second SIGTERM, process.exit, a crash), no worker outlives it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
    for (const d of liveSockDirs) rmSync(d, { recursive: true, force: true });
  });
}

/** Private 0700 dir for one worker's socket, named after our pid so a later process can sweep it if we die. */
async function makeSockDir(): Promise<string> {
  if (!staleSwept) {
    staleSwept = true;
    await sweepStaleSockDirs();
  }
  const dir = await mkdtemp(join(tmpdir(), `${SOCK_DIR_PREFIX}${process.pid}-`));
  liveSockDirs.add(dir);
  return dir;
}

/** Removes socket dirs left by processes of ours that were killed (their pid is gone). */
async function sweepStaleSockDirs(): Promise<void> {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  let names: string[];
  try {
    names = await readdir(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^mar-w-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // alive (or not ours to judge)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    const dir = join(tmpdir(), name);
    try {
      const st = await lstat(dir);
      if (st.isDirectory() && (uid < 0 || st.uid === uid)) await rm(dir, { recursive: true, force: true });
    } catch {
      /* raced with someone else's sweep */
    }
  }
}

function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

interface Pending {
  kind: 'start' | 'load' | 'predict';
  resolve: (reply: WorkerReply) => void;
  reject: (err: MarError) => void;
  timer: NodeJS.Timeout | null;
  /** predict: the response timeout asked for (for the message). */
  timeoutMs?: number;
}

export class WorkerProcess extends EventEmitter {
  readonly id: string;
  readonly startTime = new Date();
  readonly #options: WorkerProcessOptions;
  readonly #child: ChildProcess;
  readonly #socketSpec: WorkerSocket;
  readonly #sockDir: string | null;
  readonly #decoder: ReplyDecoder;
  readonly #log: (line: WorkerLogLine) => void;
  #state: WorkerState = 'starting';
  #socket: Socket | null = null;
  #pending: Pending | null = null;
  #exitInfo: WorkerExitInfo | null = null;
  #finalized = false;
  #killedByUs = false;
  #deathTimer: NodeJS.Timeout | null = null;
  readonly #exited: Promise<WorkerExitInfo>;
  #resolveExited!: (info: WorkerExitInfo) => void;
  #workerPid: number | null = null;
  #drain: Promise<void> | null = null;
  /**
   * The predict response timeout: one timer, re-armed lazily when it fires before the current deadline, instead
   * of a timer created and cleared per batch (the hot path). Unref'd: the socket keeps the process alive.
   */
  #watchdog: NodeJS.Timeout | null = null;
  /** performance.now() when the armed watchdog fires. */
  #watchdogAt = 0;
  /** performance.now() deadline of the batch in flight (Infinity: none). */
  #deadline = Infinity;
  readonly #onWatchdog = (): void => {
    this.#watchdog = null;
    const pending = this.#pending;
    if (!pending || pending.kind !== 'predict' || this.#deadline === Infinity) return;
    const left = this.#deadline - performance.now();
    if (left > 0) {
      this.#setWatchdog(left);
      return;
    }
    this.#pending = null;
    pending.reject(
      new MarError(
        'WORKER_TIMEOUT',
        `Backend worker did not respond in given time: model ${this.modelName} worker W-${this.id} took longer than ${pending.timeoutMs} ms and was killed`,
      ),
    );
    void this.#terminate(0);
  };

  /**
   * Spawns the worker, waits for its "started" line, connects and sends LOAD. Rejects MarError
   * WORKER_START_FAILED (spawn failure, early exit, timeout) or WORKER_LOAD_FAILED (non-200 LOAD reply:
   * httpStatus = reply code, message = the worker's message). On failure the process is gone.
   */
  static async start(options: WorkerProcessOptions): Promise<WorkerProcess> {
    const sockType = options.sockType ?? 'unix';
    let sockDir: string | null = null;
    let socket: WorkerSocket;
    if (sockType === 'unix') {
      // Private 0700 dir: nobody else can connect to (or pre-create) the socket.
      sockDir = await makeSockDir();
      socket = { type: 'unix', path: unixSocketPath(sockDir) };
    } else {
      socket = { type: 'tcp', host: '127.0.0.1', port: await freeTcpPort() };
    }
    const spec = launchSpec({
      runtime: options.model.runtime,
      modelDir: options.model.dir,
      entry: options.model.entry,
      socket,
      decodeInputRequest: options.decodeInputRequest ?? true,
      ...(options.python !== undefined ? { python: options.python } : {}),
      ...(options.env !== undefined ? { env: options.env } : {}),
      ...(options.maxRequestBytes !== undefined ? { maxFieldBytes: workerFieldCap(options.maxRequestBytes) } : {}),
    });
    installExitHook();
    let child: ChildProcess;
    try {
      child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, stdio: ['ignore', 'pipe', 'pipe'] });
      liveChildren.add(child);
    } catch (err) {
      if (sockDir) {
        liveSockDirs.delete(sockDir);
        await rm(sockDir, { recursive: true, force: true });
      }
      throw new MarError('WORKER_START_FAILED', `cannot start worker for model ${options.model.name}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const worker = new WorkerProcess(options, child, socket, sockDir, spec.command);
    // Cancelling kills the process whatever phase the start is in; its exit then fails the start.
    const onAbort = (): void => {
      worker.#fail(new MarError('WORKER_START_FAILED', `start of worker W-${options.id} of model ${options.model.name} was cancelled`));
      worker.#signal('SIGKILL');
    };
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await worker.#startup();
      return worker;
    } catch (err) {
      const loadFailed = err instanceof MarError && err.code === 'WORKER_LOAD_FAILED';
      // A failed LOAD: let the worker print its traceback and exit by itself, briefly.
      await worker.#terminate(loadFailed ? DEATH_GRACE_MS : 0);
      if (err instanceof MarError && (loadFailed || err.code === 'WORKER_START_FAILED')) throw err;
      throw new MarError('WORKER_START_FAILED', `worker W-${options.id} of model ${options.model.name} failed to start: ${(err as Error).message}`, {
        cause: err,
        details: { pid: worker.pid },
      });
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  private constructor(options: WorkerProcessOptions, child: ChildProcess, socket: WorkerSocket, sockDir: string | null, command: string) {
    super();
    this.id = options.id;
    this.#options = options;
    this.#child = child;
    this.#socketSpec = socket;
    this.#sockDir = sockDir;
    this.#decoder = new ReplyDecoder({ maxFrameBytes: options.maxResponseBytes ?? DEFAULT_MAX_FRAME_BYTES });
    this.#log = options.log ?? defaultLog;
    this.#exited = new Promise((resolve) => (this.#resolveExited = resolve));

    this.#readLines(child.stdout!, 'stdout');
    this.#readLines(child.stderr!, 'stderr');
    child.on('error', (err: NodeJS.ErrnoException) => {
      const msg =
        err.code === 'ENOENT'
          ? `cannot start worker for model ${options.model.name}: ${command} not found; install it or pass --python`
          : `cannot start worker for model ${options.model.name}: ${err.message}`;
      this.#fail(new MarError('WORKER_START_FAILED', msg, { cause: err }));
      // A spawn failure emits no 'exit'.
      if (child.pid === undefined) this.#onExit(null, null);
    });
    child.on('exit', (code, signal) => this.#onExit(code, signal));
    child.on('close', () => void this.#finalize());
  }

  get pid(): number {
    return this.#workerPid ?? this.#child.pid ?? 0;
  }

  get state(): WorkerState {
    return this.#state;
  }

  get modelName(): string {
    return this.#options.model.name;
  }

  /** Resolves with the exit info once the process has exited and the worker is cleaned up. */
  get exited(): Promise<WorkerExitInfo> {
    return this.#exited;
  }

  /**
   * Sends one batch and resolves with the worker's reply (any code: handler errors are replies, not
   * rejections). Rejects MarError: WORKER_TIMEOUT (no reply in timeoutMs; the process is killed),
   * WORKER_DIED 'Worker died.' (process exit / socket close; httpStatus 507 if the exit code was 137),
   * FRAME_* (bad reply; the process is killed), or if the worker is busy or not running.
   */
  predict(batch: InferenceRequest[], timeoutMs: number): Promise<WorkerReply> {
    if (this.#state === 'busy') {
      return Promise.reject(new MarError('INTERNAL', `worker W-${this.id} of model ${this.modelName} already has a batch in flight`));
    }
    if (this.#state !== 'ready') return Promise.reject(this.#diedError());
    let frame: Buffer;
    try {
      frame = encodePredict(batch);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#state = 'busy';
    return new Promise<WorkerReply>((resolve, reject) => {
      this.#pending = { kind: 'predict', resolve, reject, timer: null, timeoutMs };
      this.#armWatchdog(timerDelay(timeoutMs));
      this.#socket!.write(frame);
    });
  }

  #armWatchdog(delay: number | null): void {
    if (delay === null) {
      this.#deadline = Infinity;
      return;
    }
    this.#deadline = performance.now() + delay;
    // an armed timer that fires no later than the deadline re-checks then
    if (this.#watchdog !== null && this.#watchdogAt <= this.#deadline) return;
    if (this.#watchdog !== null) clearTimeout(this.#watchdog);
    this.#setWatchdog(delay);
  }

  #setWatchdog(delay: number): void {
    this.#watchdogAt = performance.now() + delay;
    this.#watchdog = setTimeout(this.#onWatchdog, Math.min(Math.max(Math.ceil(delay), 1), 0x7fffffff));
    this.#watchdog.unref();
  }

  /** Closes the socket (the worker exits on EOF), SIGTERM after graceMs, SIGKILL after another graceMs. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.#finalized) return;
    if (this.#state !== 'dead') this.#state = 'stopping';
    this.#socket?.end();
    const term = setTimeout(() => {
      this.#signal('SIGTERM');
      const kill = setTimeout(() => this.#signal('SIGKILL'), graceMs);
      kill.unref();
      void this.#exited.then(() => clearTimeout(kill));
    }, graceMs);
    term.unref();
    await this.#exited;
    clearTimeout(term);
  }

  /** Resident set size in bytes from /proc/<pid>/status; 0 if unknown. */
  memoryUsage(): number {
    if (this.#exitInfo || !this.pid) return 0;
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  // ------------------------------------------------------------------------------------------------------------

  #startup(): Promise<void> {
    const timeoutMs = this.#options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const started = new Promise<WorkerReply>((resolve, reject) => {
      const pending: Pending = { kind: 'start', resolve, reject, timer: null };
      const delay = timerDelay(timeoutMs);
      if (delay !== null) pending.timer = setTimeout(() => {
        if (this.#pending !== pending) return;
        this.#pending = null;
        reject(
          new MarError(
            'WORKER_START_FAILED',
            `Backend worker startup time out: model ${this.modelName} worker W-${this.id} did not start within ${timeoutMs} ms`,
            { details: { pid: this.pid } },
          ),
        );
      }, delay);
      this.#pending = pending;
    });
    return started.then(() => this.#load());
  }

  /** Called from the stdout reader on the "started" line: connect, then the start promise resolves. */
  #onStarted(): void {
    const pending = this.#pending;
    if (!pending || pending.kind !== 'start') return;
    const deadline = Date.now() + 10_000;
    const attempt = (): void => {
      const s =
        this.#socketSpec.type === 'unix'
          ? createConnection({ path: this.#socketSpec.path })
          : createConnection({ host: this.#socketSpec.host, port: this.#socketSpec.port });
      const onError = (err: NodeJS.ErrnoException): void => {
        s.destroy();
        if (this.#pending !== pending) return;
        if ((err.code === 'ECONNREFUSED' || err.code === 'ENOENT') && Date.now() < deadline) {
          setTimeout(attempt, 20).unref();
          return;
        }
        this.#fail(new MarError('WORKER_START_FAILED', `cannot connect to worker W-${this.id} of model ${this.modelName}: ${err.message}`, { cause: err }));
      };
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        if (this.#pending !== pending) {
          s.destroy();
          return;
        }
        this.#attachSocket(s);
        this.#settle(pending, { code: 200, message: 'connected', predictions: [] });
      });
    };
    attempt();
  }

  async #load(): Promise<void> {
    const model = this.#options.model;
    const timeoutMs = this.#options.loadTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const frame = encodeLoad({
      modelName: model.name,
      modelPath: model.dir,
      batchSize: Math.max(1, this.#options.batchSize),
      handler: model.handler,
      gpuId: this.#options.gpuId ?? -1,
    });
    const reply = await new Promise<WorkerReply>((resolve, reject) => {
      if (this.#exitInfo) return reject(this.#startError());
      const pending: Pending = { kind: 'load', resolve, reject, timer: null };
      const delay = timerDelay(timeoutMs);
      if (delay !== null) pending.timer = setTimeout(() => {
        if (this.#pending !== pending) return;
        this.#pending = null;
        reject(new MarError('WORKER_START_FAILED', `model ${model.name} worker W-${this.id} did not answer LOAD within ${timeoutMs} ms`));
      }, delay);
      this.#pending = pending;
      this.#socket!.write(frame);
    });
    if (reply.code !== 200) {
      throw new MarError('WORKER_LOAD_FAILED', reply.message || `Failed to load model ${model.name}: worker answered ${reply.code}`, {
        httpStatus: reply.code >= 400 && reply.code <= 599 ? reply.code : 500,
        details: { code: reply.code, pid: this.pid },
      });
    }
    this.#state = 'ready';
  }

  #attachSocket(s: Socket): void {
    this.#socket = s;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => {
      let replies: WorkerReply[];
      try {
        replies = this.#decoder.push(chunk);
      } catch (err) {
        this.#fail(err as MarError);
        void this.#terminate(0);
        return;
      }
      for (const reply of replies) {
        const pending = this.#pending;
        if (!pending || pending.kind === 'start') {
          this.#fail(new MarError('FRAME_CORRUPT', `worker W-${this.id} of model ${this.modelName} sent a reply nobody asked for`));
          void this.#terminate(0);
          return;
        }
        if (pending.kind === 'predict') this.#state = 'ready';
        this.#settle(pending, reply);
      }
    });
    s.on('error', () => {
      /* 'close' follows; the exit code decides the error */
    });
    s.on('close', () => {
      if (this.#exitInfo || this.#state === 'stopping' && !this.#pending) return;
      // The worker closed its end: it is dying. Give it a moment to exit so the exit code is known, then make sure.
      if (this.#state === 'ready' || this.#state === 'busy') this.#state = 'stopping';
      this.#deathTimer = setTimeout(() => this.#signal('SIGKILL'), DEATH_GRACE_MS);
      this.#deathTimer.unref();
    });
  }

  #settle(pending: Pending, reply: WorkerReply): void {
    if (this.#pending !== pending) return;
    this.#pending = null;
    if (pending.timer) clearTimeout(pending.timer);
    pending.resolve(reply);
  }

  /** Rejects whatever is pending with err. */
  #fail(err: MarError): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = null;
    if (pending.timer) clearTimeout(pending.timer);
    pending.reject(err);
  }

  #diedError(): MarError {
    const info = this.#exitInfo;
    const oom = !!info && (info.code === 137 || (info.signal === 'SIGKILL' && !this.#killedByUs));
    return new MarError('WORKER_DIED', 'Worker died.', { httpStatus: oom ? 507 : 500, details: { ...info, pid: this.pid } });
  }

  #startError(): MarError {
    const info = this.#exitInfo;
    const how = info ? (info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`) : 'closed its connection';
    return new MarError(
      'WORKER_START_FAILED',
      `Backend worker for model ${this.modelName} (W-${this.id}) ${how} before it was ready; see the lines logged above`,
      { details: { ...info, pid: this.pid } },
    );
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exitInfo) return;
    this.#exitInfo = { code, signal };
    liveChildren.delete(this.#child);
    if (this.#deathTimer) clearTimeout(this.#deathTimer);
    if (this.#watchdog) clearTimeout(this.#watchdog);
    this.#watchdog = null;
    if (this.#state !== 'dead') this.#state = 'stopping';
    const failPending = (): void => {
      const pending = this.#pending;
      if (pending) this.#fail(pending.kind === 'predict' ? this.#diedError() : this.#startError());
      this.#socket?.destroy();
    };
    const s = this.#socket;
    if (this.#pending && s && !s.destroyed) {
      // The exit can be seen before the socket's last bytes (e.g. a failed LOAD's reply, sent just before
      // exiting): read the socket to its end first, so that reply wins over "exited".
      this.#drain = new Promise<void>((resolve) => {
        const timer = setTimeout(() => resolve(), DRAIN_GRACE_MS);
        s.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      }).then(failPending);
    } else {
      failPending();
    }
    // Normally 'close' follows once the pipes drain; don't wait forever if a grandchild holds them.
    setTimeout(() => void this.#finalize(), PIPE_CLOSE_GRACE_MS).unref();
  }

  async #finalize(): Promise<void> {
    if (this.#finalized || !this.#exitInfo) return;
    this.#finalized = true;
    await this.#drain;
    this.#state = 'dead';
    this.#socket?.destroy();
    if (this.#sockDir) {
      liveSockDirs.delete(this.#sockDir);
      await rm(this.#sockDir, { recursive: true, force: true }).catch(() => {});
    }
    this.#resolveExited(this.#exitInfo);
    this.emit('exit', this.#exitInfo);
  }

  #signal(sig: NodeJS.Signals, byUs = true): void {
    if (this.#exitInfo || this.#child.pid === undefined) return;
    if (byUs) this.#killedByUs = true;
    try {
      this.#child.kill(sig);
    } catch {
      /* already gone */
    }
  }

  /** Ends the process: optionally lets it exit by itself for graceMs, then SIGKILL; resolves when finalized. */
  async #terminate(graceMs: number): Promise<void> {
    if (this.#state !== 'dead') this.#state = 'stopping';
    this.#socket?.destroy();
    if (!this.#exitInfo) {
      if (graceMs > 0) {
        const t = setTimeout(() => this.#signal('SIGKILL'), graceMs);
        t.unref();
        void this.#exited.then(() => clearTimeout(t));
      } else {
        this.#signal('SIGKILL');
      }
    }
    if (this.#child.pid === undefined && !this.#exitInfo) this.#onExit(null, null);
    await this.#exited;
  }

  #readLines(stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr'): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      while (partial.length > MAX_LINE_CHARS) {
        lines.push(partial.slice(0, MAX_LINE_CHARS));
        partial = partial.slice(MAX_LINE_CHARS);
      }
      for (const line of lines) this.#onLine(name, line.endsWith('\r') ? line.slice(0, -1) : line);
    });
    stream.on('end', () => {
      if (partial) this.#onLine(name, partial);
      partial = '';
    });
  }

  #onLine(stream: 'stdout' | 'stderr', line: string): void {
    // Only the worker's own handshake counts: during LOAD the handler's output may say anything.
    if (stream === 'stdout' && this.#pending?.kind === 'start') {
      const pid = PID_LINE.exec(line);
      if (pid) {
        this.#workerPid = Number(pid[1]);
        return;
      }
      if (STARTED_LINES.has(line) || line.endsWith('Torch worker started.')) {
        this.#onStarted();
        return;
      }
    }
    let at = line.indexOf(METRICS_PREFIX);
    if (at > 0 && stream === 'stdout') {
      // Handler output that bypassed the worker's line tracking (os.write(1, ...), sys.stdout.buffer) can leave a
      // partial line that the worker's next [METRICS] line is glued to: log the text, keep the metric.
      this.#log({ modelName: this.modelName, workerId: this.id, stream, line: line.slice(0, at) });
      line = line.slice(at);
      at = 0;
    }
    if (at === 0) {
      const onMetric = this.#options.onMetric;
      if (onMetric === undefined) {
        if (isWellFormedMetricLine(line)) return; // dropped, as before, without building the object
      } else {
        const metric = parseMetricLine(line);
        if (metric) {
          onMetric(metric);
          return;
        }
      }
    }
    this.#log({ modelName: this.modelName, workerId: this.id, stream, line });
  }
}
