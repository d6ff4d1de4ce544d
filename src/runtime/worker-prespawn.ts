/**
 * Workers spawned before their model is on disk (issue 16's cold start, issue 14's parallel start): the caller that
 * knows a model will be served (a startup model of the server, predict's model) spawns its workers while the
 * server's modules load and the archive is extracted; WorkerProcess.start then adopts one whose command line and
 * environment match what it would spawn (launchers.ts deferredSettings) instead of spawning, and the worker is
 * told its model's cwd and environment on stdin. A worker nobody adopts is discarded (killed) by its caller.
 */

import type { ChildProcess } from 'node:child_process';
import { MarError } from '../errors.js';
import {
  type DeferredSettings,
  deferredSettings,
  type LaunchOptions,
  type LaunchSpec,
  PRESPAWN_ACCEPT_TIMEOUT_S,
  prespawnSpec,
  type WorkerSocket,
} from './launchers.js';
import { allocateEndpoint, releaseEndpoint } from './worker-connection.js';
import { spawnWorkerChild } from './worker-spawn.js';

/** What a pre-spawned worker is started with: a launch without its model (launchers.ts LaunchOptions). */
export type PrespawnOptions = Omit<LaunchOptions, 'modelDir' | 'entry' | 'socket'> & {
  /** The model dir's best guess (the model directory itself, else the cwd): where a version manager looks. */
  standInDir: string;
  sockType?: 'unix' | 'tcp';
};

/** A pre-spawned process handed to WorkerProcess.start: it takes the pipes and the exit from here. */
export interface AdoptedWorker {
  child: ChildProcess;
  socket: WorkerSocket;
  sockDir: string | null;
  settings: DeferredSettings;
}

interface Shelved {
  spec: LaunchSpec;
  child: ChildProcess;
  socket: WorkerSocket;
  sockDir: string | null;
  /** Set once the process failed to spawn or exited: it is not adopted, only cleaned up. */
  gone: boolean;
  onGone: () => void;
  spawnedAt: number;
}

/** Spawned and not adopted yet. */
const shelf = new Set<Shelved>();
/**
 * A waiting worker gives up after its accept timeout; one this close to it is not adopted (it could exit between
 * adoption and the connection) but left to exit or be discarded, and the worker is spawned afresh.
 */
const ADOPT_WITHIN_MS = (PRESPAWN_ACCEPT_TIMEOUT_S - 30) * 1000;

/** The workers one caller spawned early; those not adopted yet are discarded together. */
export interface PrespawnGroup {
  /** The pids of the processes spawned (tests, logs). */
  readonly pids: readonly number[];
  /**
   * Kills the group's workers still waiting for adoption (startup is over, or failed), removes their socket dirs
   * and resolves with how many there were.
   */
  discard(): Promise<number>;
}

/**
 * Spawns `count` workers for a model that is not on disk yet. Never throws: a worker that cannot be spawned here
 * is left out, and WorkerProcess.start spawns (and reports) it the usual way.
 */
export async function prespawnWorkers(o: PrespawnOptions, count = 1): Promise<PrespawnGroup> {
  const { standInDir, sockType, ...launch } = o;
  const mine: Shelved[] = [];
  for (let i = 0; i < count; i++) {
    let endpoint: Awaited<ReturnType<typeof allocateEndpoint>> | null = null;
    try {
      endpoint = await allocateEndpoint(sockType ?? 'unix');
      const spec = prespawnSpec({ ...launch, socket: endpoint.socket }, standInDir);
      const child = spawnWorkerChild(spec, 'pipe');
      if (child.pid === undefined) throw new Error('not spawned');
      const item: Shelved = { spec, child, ...endpoint, gone: false, onGone: () => {}, spawnedAt: Date.now() };
      item.onGone = () => {
        item.gone = true;
        if (shelf.delete(item)) void releaseEndpoint(item.sockDir);
      };
      child.once('error', item.onGone);
      child.once('exit', item.onGone);
      // the settings line is written at adoption; a worker that died first must not crash us with EPIPE
      child.stdin!.on('error', () => {});
      shelf.add(item);
      mine.push(item);
    } catch {
      if (endpoint) await releaseEndpoint(endpoint.sockDir);
    }
  }
  return {
    pids: mine.map((item) => item.child.pid!),
    discard: () => discard(mine.filter((item) => shelf.has(item))),
  };
}

/** Takes a live pre-spawned worker that can stand in for a worker of `real`, or null (spawn one). */
export function adoptPrespawned(real: LaunchSpec): AdoptedWorker | null {
  for (const item of shelf) {
    if (item.gone || item.child.exitCode !== null || item.child.signalCode !== null) continue;
    if (Date.now() - item.spawnedAt > ADOPT_WITHIN_MS) continue;
    const settings = deferredSettings(item.spec, real);
    if (settings === null) continue;
    shelf.delete(item);
    item.child.off('error', item.onGone);
    item.child.off('exit', item.onGone);
    return { child: item.child, socket: item.socket, sockDir: item.sockDir, settings };
  }
  return null;
}

/** How many pre-spawned workers wait for adoption (tests). */
export function prespawnedCount(): number {
  return shelf.size;
}

async function discard(items: readonly Shelved[]): Promise<number> {
  for (const item of items) shelf.delete(item);
  await Promise.all(
    items.map(async (item) => {
      if (item.child.exitCode === null && item.child.signalCode === null && item.child.pid !== undefined) {
        const exited = new Promise((resolve) => item.child.once('exit', resolve));
        item.child.kill('SIGKILL');
        await exited;
      }
      await releaseEndpoint(item.sockDir);
    }),
  );
  return items.length;
}

/**
 * The process of a worker about to start: an early one launched the same way (adoptPrespawned; it is told its
 * model's settings on stdin), else a new one on a new endpoint. Throws WORKER_START_FAILED when it cannot spawn.
 */
export async function adoptOrSpawn(
  launch: (socket: WorkerSocket) => LaunchSpec,
  sockType: 'unix' | 'tcp',
  modelName: string,
): Promise<{ child: ChildProcess; socket: WorkerSocket; sockDir: string | null; command: string }> {
  const adopted = adoptPrespawned(launch(sockType === 'unix' ? { type: 'unix', path: '' } : { type: 'tcp', host: '127.0.0.1', port: 0 }));
  if (adopted !== null) {
    adopted.child.stdin!.end(`${JSON.stringify(adopted.settings)}\n`);
    return { child: adopted.child, socket: adopted.socket, sockDir: adopted.sockDir, command: adopted.child.spawnfile };
  }
  const { socket, sockDir } = await allocateEndpoint(sockType);
  const spec = launch(socket);
  try {
    return { child: spawnWorkerChild(spec), socket, sockDir, command: spec.command };
  } catch (err) {
    await releaseEndpoint(sockDir);
    throw new MarError('WORKER_START_FAILED', `cannot start worker for model ${modelName}: ${(err as Error).message}`, { cause: err });
  }
}
