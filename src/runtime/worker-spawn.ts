/**
 * Starting a worker's OS process from its LaunchSpec (launchers.ts), for WorkerProcess and for a worker spawned
 * early (worker-prespawn.ts) alike, and the rule that no worker outlives this process, however it ends.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import type { LaunchSpec } from './launchers.js';

/** Worker processes not yet exited (starting and pre-spawned ones included), killed if this process exits first. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Whatever way this process ends (a second SIGTERM, process.exit, a crash), no worker outlives it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
  });
}

/**
 * Spawns the worker of `spec` (stdout and stderr piped; stdin piped only for a pre-spawned worker, which reads
 * its model's settings there) and tracks it until it exits. Throws what child_process.spawn throws synchronously.
 */
export function spawnWorkerChild(spec: LaunchSpec, stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  installExitHook();
  const child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, stdio: [stdin, 'pipe', 'pipe'] });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  // a spawn failure (ENOENT) emits 'error' and never 'exit'
  if (child.pid === undefined) child.once('error', () => liveChildren.delete(child));
  return child;
}
