import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { packagePath } from '../../src/util/package-info.js';

export const ARCHIVER_BIN = packagePath('bin', 'model-archiver.js');
export const SERVER_BIN = packagePath('bin', 'model-server.js');
export const FIXTURES = packagePath('fixtures');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion as a real child process and collects its output. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 120_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
    child.stdin.end(options.input);
  });
}

/** Runs `model-archiver` with args. */
export function archiver(args: readonly string[], options: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  return run(process.execPath, [ARCHIVER_BIN, ...args], options);
}

/** Runs `model-server` with args. */
export function server(args: readonly string[], options: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  return run(process.execPath, [SERVER_BIN, ...args], options);
}

/** A fresh temp dir removed after the test. */
export async function tempDir(t: TestContext, prefix = 'mar-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
