/**
 * Per-model Python requirements (TorchServe's install_py_dep_per_model): the archive's requirements file
 * (torch-model-archiver --requirements-file) is installed with `python -m pip install --target` into a
 * directory keyed by the digest of the file (and the interpreter), so models and restarts with the same
 * requirements share one install. pip runs into a temp directory that is renamed into place only when pip
 * succeeded: a failed or interrupted install leaves no half-filled directory behind.
 */

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';

export interface ModelRequirements {
  modelName: string;
  /** The extracted model; pip runs there, so relative paths inside the requirements file resolve as TorchServe's. */
  modelDir: string;
  /** The manifest's model.requirementsFile (relative to the model). */
  requirementsFile: string;
  /** The interpreter whose pip installs them (the one the workers run). */
  python: string;
  /** The cache root (config python_deps_location). */
  cacheRoot: string;
  log?: (msg: string) => void;
}

/** How many of pip's last output lines a failure message quotes. */
const PIP_TAIL_LINES = 5;
const COMPLETE_MARKER = '.mar-complete';

/** Installs in progress in this process, by directory: concurrent registers of one digest share one pip run. */
const installing = new Map<string, Promise<string>>();

/**
 * The directory to put on the workers' PYTHONPATH, with the requirements installed (pip runs only the first
 * time for a given digest). Throws MODEL_DEPS_FAILED with pip's last lines when pip fails.
 */
export async function installModelRequirements(o: ModelRequirements): Promise<string> {
  const file = resolve(o.modelDir, o.requirementsFile);
  const rel = relative(o.modelDir, file);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new MarError(
      'MANIFEST_INVALID',
      `model.requirementsFile ${JSON.stringify(o.requirementsFile)} points outside the model directory`,
    );
  }
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (err) {
    throw new MarError(
      'CONFIG_INVALID',
      `cannot read the requirements file ${o.requirementsFile} of model ${o.modelName}: ${describeFsError(err)}`,
      {
        cause: err,
      },
    );
  }
  const digest = createHash('sha256').update(o.python).update('\0').update(text).digest('hex');
  const target = join(o.cacheRoot, digest);
  let pending = installing.get(target);
  if (!pending) {
    pending = install(o, file, target).finally(() => installing.delete(target));
    installing.set(target, pending);
  }
  return pending;
}

async function isComplete(dir: string): Promise<boolean> {
  return (await stat(join(dir, COMPLETE_MARKER)).catch(() => null)) !== null;
}

async function install(o: ModelRequirements, file: string, target: string): Promise<string> {
  if (await isComplete(target)) return target;
  try {
    await mkdir(o.cacheRoot, { recursive: true });
  } catch (err) {
    throw new MarError('OUTPUT_FAILED', `cannot create python_deps_location ${o.cacheRoot}: ${describeFsError(err)}`, { cause: err });
  }
  // a directory without the marker is what an interrupted older run left: replace it
  await rm(target, { recursive: true, force: true });
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  o.log?.(`Installing the Python requirements of model ${o.modelName} (${o.requirementsFile}) into ${target}`);
  try {
    await runPip(o, file, tmp);
    await writeFile(join(tmp, COMPLETE_MARKER), '');
    try {
      await rename(tmp, target);
    } catch (err) {
      // another process finished the same install first: use its directory
      if (!(await isComplete(target))) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  o.log?.(`Installed the Python requirements of model ${o.modelName}`);
  return target;
}

function runPip(o: ModelRequirements, file: string, into: string): Promise<void> {
  const args = ['-m', 'pip', 'install', '--no-input', '--disable-pip-version-check', '--target', into, '-r', file];
  return new Promise<void>((resolveRun, reject) => {
    const tail: string[] = [];
    const keep = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split(/\r?\n/)) {
        if (line.trim() === '') continue;
        tail.push(line.trim());
        if (tail.length > PIP_TAIL_LINES) tail.shift();
      }
    };
    const fail = (why: string, cause?: unknown): void =>
      reject(new MarError('MODEL_DEPS_FAILED', `Custom pip package installation failed for model ${o.modelName}: ${why}`, { cause }));
    let child;
    try {
      child = spawn(o.python, args, { cwd: o.modelDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIP_NO_INPUT: '1' } });
    } catch (err) {
      fail(`cannot run ${o.python}: ${describeFsError(err)}`, err);
      return;
    }
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => fail(`cannot run ${o.python}: ${describeFsError(err)}`, err));
    child.on('close', (code, signal) => {
      if (code === 0) resolveRun();
      else fail(`pip ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: ${tail.join(' | ') || 'no output'}`);
    });
  });
}
