/** For the early-spawn tests: a python3 that records its starts, a liveness check, a noop Python model directory. */

import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { FIXTURES, tempDir } from './util.js';

/** A python3 that records every start in `pids` (the wrapper's pid is the interpreter's: it execs). */
export async function recordingPython(t: TestContext): Promise<{ dir: string; python: string; pids: () => Promise<number[]> }> {
  const dir = await tempDir(t, 'mar-early-');
  const python = join(dir, 'python');
  await writeFile(python, `#!/bin/sh\necho $$ >> '${join(dir, 'pids')}'\nexec python3 "$@"\n`);
  await chmod(python, 0o755);
  const pids = async (): Promise<number[]> =>
    (await readFile(join(dir, 'pids'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  return { dir, python, pids };
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** `<dir>/<name>`: a model directory with the noop Python handler. */
export async function noopModel(dir: string, name: string): Promise<string> {
  const model = join(dir, name);
  await mkdir(join(model, 'MAR-INF'), { recursive: true });
  await cp(join(FIXTURES, 'handlers', 'python', 'noop.py'), join(model, 'noop.py'));
  await writeFile(
    join(model, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: name, handler: 'noop:handle' } }),
  );
  return model;
}
