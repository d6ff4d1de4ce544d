import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import type { Agent, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import type { LoadConfigOptions } from '../../src/server/config.js';
import type { ModelServer } from '../../src/server/server.js';
import { startModelServer } from '../../src/server/start-server.js';
import { FIXTURES, SERVER_BIN, tempDir } from '../helpers/util.js';

export interface HttpResult {
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
  json: () => any;
}

/** One HTTP request on a fresh connection; resolves with everything a test may assert on. */
export function http(
  base: string,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: OutgoingHttpHeaders = {},
  agent: Agent | false = false,
): Promise<HttpResult> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: buf,
          text,
          json: () => JSON.parse(text),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Lines a server (or its workers) logged, and a way to wait for one. */
interface LineLog {
  lines: string[];
  push(line: string): void;
  /** Resolves with the first line (from now on or already seen) matching re; rejects if the lines end first. */
  waitLine(re: RegExp): Promise<string>;
  /** No more lines will come (the server stopped or its process exited): pending and later waits reject. */
  end(why: string): void;
}

function lineLog(): LineLog {
  type Waiter = { re: RegExp; resolve: (line: string) => void; reject: (err: Error) => void };
  const lines: string[] = [];
  const waiters: Waiter[] = [];
  let ended: string | null = null;
  // lines already buffered (a process's last output after its 'exit') get their chance first
  const rejectSoon = (w: Waiter): void => {
    setImmediate(() => {
      const i = waiters.indexOf(w);
      if (i < 0) return;
      waiters.splice(i, 1);
      w.reject(new Error(`${ended} before a line matched ${w.re}:\n${lines.join('\n')}`));
    });
  };
  return {
    lines,
    push(line) {
      lines.push(line);
      if (process.env['SERVER_TEST_DEBUG']) process.stderr.write(`  | ${line}\n`);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.re.test(line)) {
          waiters[i]!.resolve(line);
          waiters.splice(i, 1);
        }
      }
    },
    waitLine(re) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const w = { re, resolve, reject };
        waiters.push(w);
        if (ended !== null) rejectSoon(w);
      });
    },
    end(why) {
      ended = why;
      for (const w of waiters) rejectSoon(w);
    },
  };
}

export interface StartServerOptions {
  /** Extra config.properties lines (key=value). */
  props?: Record<string, string | number | boolean>;
  /** Environment the config is read with (MMS_<KEY> overrides), on top of this process's. */
  env?: NodeJS.ProcessEnv;
  /** More of loadConfig's options (the dialect, TorchServe's flags); in-process servers only. */
  load?: Pick<LoadConfigOptions, 'dialect' | 'disableTokenAuth' | 'enableModelApi' | 'noConfigSnapshots'>;
}

/** A temp dir with a model store holding the Python fixture handlers (store/py) and the Node ones (store/node). */
async function serverDir(
  t: TestContext,
  extraProps: StartServerOptions['props'],
): Promise<{ dir: string; store: string; configFile: string }> {
  const dir = await tempDir(t, 'mar-server-');
  const store = join(dir, 'store');
  await cp(join(FIXTURES, 'handlers', 'python'), join(store, 'py'), { recursive: true });
  await cp(join(FIXTURES, 'handlers', 'node'), join(store, 'node'), { recursive: true });
  const props: Record<string, string | number | boolean> = {
    inference_address: 'http://127.0.0.1:0',
    management_address: 'http://127.0.0.1:0',
    model_store: store,
    model_cache_dir: join(dir, 'cache'),
    ...extraProps,
  };
  const configFile = join(dir, 'config.properties');
  await writeFile(
    configFile,
    `${Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n')}\n`,
  );
  return { dir, store, configFile };
}

export interface RunningServer {
  /** The server under test, running in this process. */
  server: ModelServer;
  inference: string;
  management: string;
  dir: string;
  store: string;
  /** Every server log line and worker stdout/stderr line so far. */
  lines: string[];
  /** Resolves with the first line (from now on or already seen) matching re. */
  waitLine(re: RegExp): Promise<string>;
  /** Graceful stop, as SIGTERM does (in-flight requests finish, workers stop, log files close). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the model server in this process (startModelServer) on free loopback ports (port 0), configured the way
 * `model-server start` is (a config.properties file, cwd = the temp dir), over a fresh model store with the fixture
 * handlers. Stopped after the test. Tests of the CLI, signals and pid files use startServerProcess instead.
 */
export async function startServer(t: TestContext, options: StartServerOptions = {}): Promise<RunningServer> {
  // TorchServe's metrics API would listen on its default port 8082: tests run in parallel, so a free port
  const props = options.load?.dialect === 'torchserve' ? { metrics_address: 'http://127.0.0.1:0', ...options.props } : options.props;
  const { dir, store, configFile } = await serverDir(t, props);
  const log = lineLog();
  // the public API's way in: config file + MMS_* environment read by loadConfig, as `model-server start` does
  const server = await startModelServer({
    configFile,
    cwd: dir,
    env: { ...process.env, ...options.env },
    ...options.load,
    log: (msg) => log.push(msg),
    runtimeOptions: {
      log: (l) => log.push(`[${l.modelName} W-${l.workerId}] ${l.line}`),
      onEvent: (e) => log.push(`[W-${e.workerId}] worker ${e.type}${'error' in e ? `: ${e.error.message} [${e.error.code}]` : ''}`),
    },
  });
  let stopping: Promise<void> | null = null;
  const stop = (graceMs?: number): Promise<void> => {
    stopping ??= server.stop(graceMs).finally(() => log.end('the server stopped'));
    return stopping;
  };
  // A request a test left hanging gets 2 s, not shutdown_timeout (as the process helper's SIGKILL after 10 s).
  t.after(() => stop(2000));
  const url = (api: 'inference' | 'management'): string => server.listeners.find((l) => l.api === api || l.api === 'both')!.url;
  return {
    server,
    inference: url('inference'),
    management: url('management'),
    dir,
    store,
    lines: log.lines,
    waitLine: log.waitLine,
    stop: () => stop(),
  };
}

export interface ServerProcessOptions extends StartServerOptions {
  args?: string[];
  /** Do not wait for the listeners (tests of startup failures). */
  noWait?: boolean;
}

export interface ServerProcess extends Omit<RunningServer, 'server' | 'stop'> {
  proc: ChildProcess;
  /** Resolves with the exit code once the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `model-server start` as a real child process on free loopback ports, over the same kind of model store
 * as startServer: for what only a process shows (signals, exit codes, everything it prints). Stopped after the test.
 */
export async function startServerProcess(t: TestContext, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const { dir, store, configFile } = await serverDir(t, options.props);
  const proc = spawn(process.execPath, [SERVER_BIN, 'start', '--config', configFile, ...(options.args ?? [])], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', MAR_CACHE_DIR: join(dir, 'cache'), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = lineLog();
  createInterface({ input: proc.stdout! }).on('line', log.push);
  createInterface({ input: proc.stderr! }).on('line', log.push);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  void exited.then(() => log.end('the server exited'));
  let stopped = false;
  const stop = async (): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (!stopped && proc.exitCode === null && proc.signalCode === null) {
      stopped = true;
      proc.kill('SIGTERM');
    }
    return exited;
  };
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    // a grandchild that kept our pipes open must not keep the test process alive
    proc.stdout?.destroy();
    proc.stderr?.destroy();
  });
  let inference = '';
  let management = '';
  if (!options.noWait) {
    // the url ends at white space, or at the quote closing a log_format=json message
    inference = /bind to: ([^\s"]+)/.exec(await log.waitLine(/Inference API bind to: /))![1]!;
    management = /bind to: ([^\s"]+)/.exec(await log.waitLine(/Management API bind to: /))![1]!;
  }
  return { proc, inference, management, dir, store, lines: log.lines, waitLine: log.waitLine, exited, stop };
}

/** POST /models with query params; returns the HTTP result. */
export function register(s: Pick<RunningServer, 'management'>, params: Record<string, string | number | boolean>): Promise<HttpResult> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
  return http(s.management, 'POST', `/models?${q}`);
}

/** A model directory `store/<dir>` whose manifest names `name` in `version`; its handler answers `reply` per request. */
export async function versionedModel(store: string, dir: string, name: string, version: string, reply: string): Promise<void> {
  const root = join(store, dir);
  await mkdir(join(root, 'MAR-INF'), { recursive: true });
  await writeFile(join(root, 'ver.py'), `def handle(d, c):\n    return None if d is None else [${JSON.stringify(reply)}] * len(d)\n`);
  await writeFile(
    join(root, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: name, modelVersion: version, handler: 'ver:handle' } }),
  );
}

/** Registers a Python fixture handler module (fixtures/handlers/python/<module>.py) under `name`. */
export function registerPy(
  s: Pick<RunningServer, 'management'>,
  name: string,
  handler: string,
  extra: Record<string, string | number | boolean> = {},
): Promise<HttpResult> {
  return register(s, { url: 'py', model_name: name, handler, initial_workers: 1, ...extra });
}
