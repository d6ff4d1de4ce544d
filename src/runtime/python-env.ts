/**
 * Which Python runs the workers, and what it has: the default interpreter (stated once here: `$MAR_PYTHON`, else
 * `python3` on PATH; `--python` and the server's `python` key choose another) and a probe of an interpreter's
 * version and packages that imports nothing (importlib.metadata), so `verify` can say which torch a model will get.
 */

import { execFile } from 'node:child_process';

/** The environment variable that chooses the workers' Python when no flag or config key does. */
export const PYTHON_ENV = 'MAR_PYTHON';
/** The interpreter when nothing chooses one. */
export const DEFAULT_PYTHON = 'python3';

/** The workers' interpreter when no `--python` / `python` key is given. */
export function defaultPython(env: NodeJS.ProcessEnv = process.env): string {
  return env[PYTHON_ENV]?.trim() || DEFAULT_PYTHON;
}

/** What a Python interpreter is and which of the asked packages it has. */
export interface PythonProbe {
  /** The command as given (`python3`, `/usr/bin/python3`). */
  command: string;
  /** sys.executable: the interpreter that actually runs. */
  executable: string;
  /** `3.11.2` */
  version: string;
  /** Import name -> installed version (`1.13.0a0`; `installed` when it has no metadata), or null when missing. */
  packages: Record<string, string | null>;
}

// Import names whose distribution is called otherwise.
const PROBE_SCRIPT = `
import importlib.util, json, sys
try:
    from importlib import metadata
except ImportError:
    metadata = None
dists = {"PIL": "Pillow", "yaml": "PyYAML"}
found = {}
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        found[name] = None
        continue
    try:
        found[name] = metadata.version(dists.get(name, name)).split("+")[0]
    except Exception:
        found[name] = "installed"
print(json.dumps({"executable": sys.executable, "version": "%d.%d.%d" % sys.version_info[:3], "packages": found}))
`;

/**
 * Runs `command` once to learn its version and which of `packages` it has. Rejects with the reason (not found,
 * not a Python, timed out) as an Error whose message is one line.
 */
export function probePython(command: string, packages: readonly string[], timeoutMs = 20_000): Promise<PythonProbe> {
  return new Promise((resolve, reject) => {
    execFile(command, ['-c', PROBE_SCRIPT, ...packages], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (stderr.trim().split('\n').pop() ?? err.message);
        reject(new Error(`cannot run ${command}: ${why}`));
        return;
      }
      try {
        const out = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Omit<PythonProbe, 'command'>;
        resolve({ command, ...out });
      } catch {
        reject(new Error(`${command} is not a Python 3 interpreter (unexpected answer to the probe)`));
      }
    });
  });
}

/** `Python 3.11.2 at /usr/bin/python3`, as the worker's load line writes it. */
export function describeInterpreter(p: PythonProbe): string {
  return `Python ${p.version} at ${p.executable}`;
}
