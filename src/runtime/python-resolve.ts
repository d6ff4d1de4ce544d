/**
 * The interpreter behind a version manager's shim, found without running it. A pyenv shim is a bash script that
 * runs `pyenv exec`, which works out the version (several processes) before the real Python starts: tens of ms
 * per worker spawn (70 ms here). We apply pyenv's own rules once (PYENV_VERSION, else the nearest .python-version
 * from the worker's directory up, else $PYENV_ROOT/version) and start `$PYENV_ROOT/versions/<v>/bin/<name>` with
 * that directory first on PATH, as `pyenv exec` does. Anything unusual (the `system` version, a version prefix
 * such as `3.11`, no such file) keeps the shim: it is only ever a shortcut to what the shim would run.
 */

import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';

/** What to spawn instead of a command, and the environment changes that come with it. */
export interface ResolvedPython {
  command: string;
  /** Set in the worker's environment (pyenv exec's PATH and PYENV_VERSION), or empty. */
  env: Record<string, string>;
}

/** Shim detection per command path (a file read): the answer does not change while we run. */
const shimRoots = new Map<string, string | null>();

function isExecutableFile(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** The file `command` names: itself when it has a slash, else the first executable of that name on PATH. */
function which(command: string, env: NodeJS.ProcessEnv, cwd: string): string | null {
  if (command.includes('/')) return isAbsolute(command) ? command : resolve(cwd, command);
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

/** $PYENV_ROOT when `path` is a pyenv shim (a short script that execs `pyenv exec`), else null. */
function pyenvRootOfShim(path: string, env: NodeJS.ProcessEnv): string | null {
  const known = shimRoots.get(path);
  if (known !== undefined) return known;
  let root: string | null = null;
  try {
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(1024);
      const text = head.toString('utf8', 0, readSync(fd, head, 0, head.length, 0));
      if (text.startsWith('#!') && /pyenv"? exec/.test(text)) {
        root = /export PYENV_ROOT="([^"]+)"/.exec(text)?.[1] ?? env['PYENV_ROOT'] ?? dirname(dirname(path));
      }
    } finally {
      closeSync(fd);
    }
  } catch {
    root = null;
  }
  shimRoots.set(path, root);
  return root;
}

/** The version names pyenv would try, in order (PYENV_VERSION, .python-version from dir up, the global file). */
function pyenvVersions(root: string, dir: string, env: NodeJS.ProcessEnv): string[] {
  const fromEnv = env['PYENV_VERSION']?.trim();
  if (fromEnv) return fromEnv.split(':').filter(Boolean);
  const readVersions = (file: string): string[] | null => {
    try {
      return readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim())
        .flatMap((l) => l.split(/\s+/))
        .filter(Boolean);
    } catch {
      return null;
    }
  };
  for (let d = resolve(dir); ; d = dirname(d)) {
    const found = readVersions(join(d, '.python-version'));
    if (found) return found;
    if (dirname(d) === d) break;
  }
  return readVersions(join(root, 'version')) ?? [];
}

/**
 * What to run for the Python `command` of a worker whose working directory is `cwd`: the shim's interpreter when
 * `command` is a pyenv shim whose choice can be read off the files, else `command` itself (env empty).
 */
export function resolvePython(command: string, cwd: string, env: NodeJS.ProcessEnv = process.env): ResolvedPython {
  const unchanged: ResolvedPython = { command, env: {} };
  const path = which(command, env, cwd);
  if (path === null) return unchanged;
  const root = pyenvRootOfShim(path, env);
  if (root === null) return unchanged;
  const versions = pyenvVersions(root, cwd, env);
  const first = versions[0];
  // pyenv picks the first listed version that has the command; only the simple case is ours to shortcut
  if (first === undefined || first === 'system') return unchanged;
  const bin = join(root, 'versions', first, 'bin');
  const real = join(bin, basename(path));
  if (!isExecutableFile(real)) return unchanged;
  return { command: real, env: { PATH: `${bin}${delimiter}${env['PATH'] ?? ''}`, PYENV_VERSION: versions.join(':') } };
}
