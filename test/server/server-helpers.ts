import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cp, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import type { Agent } from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
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
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent },
      (res) => {
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
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface RunningServer {
  proc: ChildProcess;
  inference: string;
  management: string;
  dir: string;
  store: string;
  /** Every stdout/stderr line so far. */
  lines: string[];
  /** Resolves with the first line (from now on or already seen) matching re. */
  waitLine(re: RegExp): Promise<string>;
  /** Resolves with the exit code once the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartServerOptions {
  /** Extra config.properties lines (key=value). */
  props?: Record<string, string | number | boolean>;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Do not wait for the listeners (tests of startup failures). */
  noWait?: boolean;
}

/**
 * Starts `model-server start` as a real child process on free loopback ports, with a model store holding
 * the Python fixture handlers (store/py) and the Node ones (store/node). Stopped after the test.
 */
export async function startServer(t: TestContext, options: StartServerOptions = {}): Promise<RunningServer> {
  const dir = await tempDir(t, 'mar-server-');
  const store = join(dir, 'store');
  await cp(join(FIXTURES, 'handlers', 'python'), join(store, 'py'), { recursive: true });
  await cp(join(FIXTURES, 'handlers', 'node'), join(store, 'node'), { recursive: true });
  const props: Record<string, string | number | boolean> = {
    inference_address: 'http://127.0.0.1:0',
    management_address: 'http://127.0.0.1:0',
    model_store: store,
    ...options.props,
  };
  const configFile = join(dir, 'config.properties');
  await writeFile(configFile, Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  const proc = spawn(process.execPath, [SERVER_BIN, 'start', '--config', configFile, ...(options.args ?? [])], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', MAR_CACHE_DIR: join(dir, 'cache'), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (line: string) => void }> = [];
  const onLine = (line: string): void => {
    lines.push(line);
    if (process.env['SERVER_TEST_DEBUG']) process.stderr.write(`  | ${line}\n`);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.re.test(line)) {
        waiters[i]!.resolve(line);
        waiters.splice(i, 1);
      }
    }
  };
  createInterface({ input: proc.stdout! }).on('line', onLine);
  createInterface({ input: proc.stderr! }).on('line', onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const waitLine = (re: RegExp): Promise<string> => {
    const seen = lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      waiters.push({ re, resolve });
      void exited.then(() => {
        // give already-buffered lines a chance first
        setImmediate(() => reject(new Error(`server exited before a line matched ${re}:\n${lines.join('\n')}`)));
      });
    });
  };
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
    inference = /bind to: (\S+)/.exec(await waitLine(/Inference API bind to: /))![1]!;
    management = /bind to: (\S+)/.exec(await waitLine(/Management API bind to: /))![1]!;
  }
  return { proc, inference, management, dir, store, lines, waitLine, exited, stop };
}

/** POST /models with query params; returns the HTTP result. */
export function register(s: RunningServer, params: Record<string, string | number | boolean>): Promise<HttpResult> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
  return http(s.management, 'POST', `/models?${q}`);
}

/** Registers a Python fixture handler module (fixtures/handlers/python/<module>.py) under `name`. */
export function registerPy(
  s: RunningServer,
  name: string,
  handler: string,
  extra: Record<string, string | number | boolean> = {},
): Promise<HttpResult> {
  return register(s, { url: 'py', model_name: name, handler, initial_workers: 1, ...extra });
}
