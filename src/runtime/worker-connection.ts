/**
 * The socket transport to one worker: where its socket lives (a private unix socket dir or a free TCP port),
 * connecting once it has said it listens, writing frames, decoding replies, and the one request in flight
 * with its deadline (MMS sends one message at a time, docs/worker-protocol.md §1, §6). It knows nothing of the
 * process: the owner hears about a broken protocol, a timeout and a closed socket through hooks.
 */
import { rmSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MarError } from '../errors.js';
import { ReplyDecoder } from './frame-decoder.js';
import { unixSocketPath, type WorkerSocket } from './launchers.js';
import type { WorkerReply } from './protocol.js';

// ---------------------------------------------------------------------------------------------------------------
// Where the socket lives.

/** Socket dirs of live workers, removed synchronously if this process exits without stopping them. */
const liveSockDirs = new Set<string>();
let staleSwept = false;

const SOCK_DIR_PREFIX = 'mar-w-';

/** Private 0700 dir for one worker's socket, named after our pid so a later process can sweep it if we die. */
async function makeSockDir(): Promise<string> {
  if (!staleSwept) {
    staleSwept = true;
    process.once('exit', () => {
      for (const d of liveSockDirs) rmSync(d, { recursive: true, force: true });
    });
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

/** Where a new worker listens; `sockDir` (unix only) is released with releaseEndpoint. */
export async function allocateEndpoint(type: 'unix' | 'tcp'): Promise<{ socket: WorkerSocket; sockDir: string | null }> {
  if (type === 'tcp') return { socket: { type: 'tcp', host: '127.0.0.1', port: await freeTcpPort() }, sockDir: null };
  // Private 0700 dir: nobody else can connect to (or pre-create) the socket.
  const sockDir = await makeSockDir();
  return { socket: { type: 'unix', path: unixSocketPath(sockDir) }, sockDir };
}

/** Removes a worker's socket dir (no-op for TCP). */
export async function releaseEndpoint(sockDir: string | null): Promise<void> {
  if (!sockDir) return;
  liveSockDirs.delete(sockDir);
  await rm(sockDir, { recursive: true, force: true }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------------------------
// The connection and the request in flight.

/** setTimeout fires at once for delays over 2^31-1 ms (and for Infinity): clamp; null = no timer. */
export function timerDelay(ms: number | undefined): number | null {
  if (ms === undefined || Number.isNaN(ms) || ms === Infinity) return null;
  return Math.min(Math.max(ms, 1), 0x7fffffff);
}

/** What is in flight: the start handshake (the "started" line, then the connection), a LOAD or a PREDICT. */
export type RequestKind = 'start' | 'load' | 'predict';

interface Pending {
  kind: RequestKind;
  resolve: (reply: WorkerReply) => void;
  reject: (err: MarError) => void;
  timer: NodeJS.Timeout | null;
  /** predict: the response timeout asked for (for the message). */
  timeoutMs?: number;
  /**
   * send(): `resolve` is the caller's callback, called in the socket's 'data' event; a failure still reaches
   * `reject` a microtask later, as a promise's would (the owner finishes its own bookkeeping first).
   */
  callback?: boolean;
}

/** Rejects a pending request; a callback's rejection waits a microtask, as a promise's handlers would. */
function rejectPending(pending: Pending, err: MarError): void {
  if (pending.callback) queueMicrotask(() => pending.reject(err));
  else pending.reject(err);
}

export interface ConnectionOptions {
  workerId: string;
  modelName: string;
  /** Cap on any length field in a reply. */
  maxFrameBytes: number;
  /** The worker broke the protocol or missed a PREDICT deadline; the request in flight has failed: end the process. */
  onBroken(): void;
  /** The worker closed its end of the socket. */
  onClose(): void;
  /**
   * Sees each PREDICT reply right after its caller (the reply's metric lines: worker-output.ts routeReplyLines). After:
   * a send() caller has written its answers and sent the next batch by then, so the lines are read off the round trip;
   * a predict() caller's promise callbacks run later still.
   */
  onPredictReply?: ((reply: WorkerReply) => void) | undefined;
}

/** The socket to one worker and the one request in flight on it. */
export class WorkerConnection {
  readonly #opts: ConnectionOptions;
  readonly #decoder: ReplyDecoder;
  #socket: Socket | null = null;
  #pending: Pending | null = null;
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
    if (pending?.kind !== 'predict' || this.#deadline === Infinity) return;
    const left = this.#deadline - performance.now();
    if (left > 0) {
      this.#setWatchdog(left);
      return;
    }
    this.#pending = null;
    rejectPending(
      pending,
      new MarError(
        'WORKER_TIMEOUT',
        `Backend worker did not respond in given time: model ${this.#opts.modelName} worker W-${this.#opts.workerId} took longer than ${pending.timeoutMs} ms and was killed`,
      ),
    );
    this.#opts.onBroken();
  };

  constructor(options: ConnectionOptions) {
    this.#opts = options;
    this.#decoder = new ReplyDecoder({ maxFrameBytes: options.maxFrameBytes });
  }

  /** The kind of request in flight, or null. */
  get inFlight(): RequestKind | null {
    return this.#pending?.kind ?? null;
  }

  /** True while a socket is attached and not destroyed. */
  get open(): boolean {
    return this.#socket !== null && !this.#socket.destroyed;
  }

  /** Starts waiting for the handshake; resolves once connect() has connected. */
  awaitStart(timeoutMs: number, onTimeout: () => MarError): Promise<WorkerReply> {
    return this.#begin('start', timeoutMs, onTimeout, null);
  }

  /** Sends a LOAD frame and resolves with the reply (any code). */
  load(frame: Buffer, timeoutMs: number, onTimeout: () => MarError): Promise<WorkerReply> {
    return this.#begin('load', timeoutMs, onTimeout, frame);
  }

  /** Sends a PREDICT frame and resolves with the reply; past the deadline it rejects WORKER_TIMEOUT and calls onBroken. */
  predict(frame: Buffer, timeoutMs: number): Promise<WorkerReply> {
    return new Promise<WorkerReply>((resolve, reject) => this.#sendPredict(frame, timeoutMs, resolve, reject, false));
  }

  /**
   * predict() without a promise (the batch-1 round trip's hot path): `onReply` is called from the socket's 'data'
   * event, `onError` a microtask after the failure (as predict()'s rejection).
   */
  send(frame: Buffer, timeoutMs: number, onReply: (reply: WorkerReply) => void, onError: (err: MarError) => void): void {
    this.#sendPredict(frame, timeoutMs, onReply, onError, true);
  }

  #sendPredict(
    frame: Buffer,
    timeoutMs: number,
    resolve: (reply: WorkerReply) => void,
    reject: (err: MarError) => void,
    callback: boolean,
  ): void {
    this.#pending = { kind: 'predict', resolve, reject, timer: null, timeoutMs, callback };
    this.#armWatchdog(timerDelay(timeoutMs));
    this.#socket!.write(frame);
  }

  #begin(kind: 'start' | 'load', timeoutMs: number, onTimeout: () => MarError, frame: Buffer | null): Promise<WorkerReply> {
    return new Promise<WorkerReply>((resolve, reject) => {
      const pending: Pending = { kind, resolve, reject, timer: null };
      const delay = timerDelay(timeoutMs);
      if (delay !== null)
        pending.timer = setTimeout(() => {
          if (this.#pending !== pending) return;
          this.#pending = null;
          reject(onTimeout());
        }, delay);
      this.#pending = pending;
      if (frame) this.#socket!.write(frame);
    });
  }

  /** The worker said it listens: connect (retrying for 10 s while the socket is not there yet), then the start resolves. */
  connect(spec: WorkerSocket): void {
    const pending = this.#pending;
    if (pending?.kind !== 'start') return;
    const deadline = Date.now() + 10_000;
    const attempt = (): void => {
      const s = spec.type === 'unix' ? createConnection({ path: spec.path }) : createConnection({ host: spec.host, port: spec.port });
      const onError = (err: NodeJS.ErrnoException): void => {
        s.destroy();
        if (this.#pending !== pending) return;
        if ((err.code === 'ECONNREFUSED' || err.code === 'ENOENT') && Date.now() < deadline) {
          setTimeout(attempt, 20).unref();
          return;
        }
        this.fail(
          new MarError(
            'WORKER_START_FAILED',
            `cannot connect to worker W-${this.#opts.workerId} of model ${this.#opts.modelName}: ${err.message}`,
            {
              cause: err,
            },
          ),
        );
      };
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        if (this.#pending !== pending) {
          s.destroy();
          return;
        }
        this.#attach(s);
        this.#settle(pending, { code: 200, message: 'connected', predictions: [] });
      });
    };
    attempt();
  }

  #attach(s: Socket): void {
    this.#socket = s;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => {
      let replies: WorkerReply[];
      try {
        replies = this.#decoder.push(chunk);
      } catch (err) {
        this.fail(err as MarError);
        this.#opts.onBroken();
        return;
      }
      // A callback runs now and may send the next batch: a second reply in the same read would be taken for its
      // answer. It breaks the protocol (one reply per request): end the worker first, then answer the request.
      if (replies.length > 1 && this.#pending?.kind === 'predict' && this.#pending.callback) {
        const pending = this.#pending;
        this.#opts.onBroken();
        this.#settle(pending, replies[0]!);
        return;
      }
      for (const reply of replies) {
        const pending = this.#pending;
        if (!pending || pending.kind === 'start') {
          this.fail(
            new MarError('FRAME_CORRUPT', `worker W-${this.#opts.workerId} of model ${this.#opts.modelName} sent a reply nobody asked for`),
          );
          this.#opts.onBroken();
          return;
        }
        this.#settle(pending, reply);
      }
    });
    s.on('error', () => {
      /* 'close' follows; the exit code decides the error */
    });
    s.on('close', () => this.#opts.onClose());
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

  #settle(pending: Pending, reply: WorkerReply): void {
    if (this.#pending !== pending) return;
    this.#pending = null;
    if (pending.timer) clearTimeout(pending.timer);
    pending.resolve(reply);
    if (pending.kind === 'predict') this.#opts.onPredictReply?.(reply);
  }

  /** Rejects whatever is in flight with err. */
  fail(err: MarError): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = null;
    if (pending.timer) clearTimeout(pending.timer);
    rejectPending(pending, err);
  }

  /** The process is gone: no deadline matters any more. */
  stopWatchdog(): void {
    if (this.#watchdog) clearTimeout(this.#watchdog);
    this.#watchdog = null;
  }

  /** Resolves when the socket has closed (its last bytes read), or after graceMs. */
  closed(graceMs: number): Promise<void> {
    const s = this.#socket;
    return new Promise<void>((resolve) => {
      if (!s || s.destroyed) return resolve();
      const timer = setTimeout(() => resolve(), graceMs);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Half-closes: the worker exits on EOF. */
  end(): void {
    this.#socket?.end();
  }

  destroy(): void {
    this.#socket?.destroy();
  }
}
