/**
 * Where a model's handler is: the one lookup that `create` (over its inputs), `verify` (over an archive), the
 * model loader (over the extracted directory) and the Node worker (over the model dir) share.
 *
 * The rules, as MMS resolves an entry point: a module `sub/h` is looked for in `sub/` first (MMS puts the handler's
 * directory first on PYTHONPATH), then at the model root; an absolute directory (`/opt/h/h`) is looked for there
 * only. Python finds `h.py` or the package `h/__init__.py` (a dotted `pkg.h` is `pkg/h.py`); Node finds `h.js`,
 * `h.mjs` or `h.cjs`. A TorchServe built-in name (`image_classifier`) that the model does not provide is
 * TorchServe's own Python handler (builtins.ts says which ones our Python worker runs).
 */

import { isAbsolute } from 'node:path';
import { type BuiltinHandler, builtinHandler } from './builtins.js';
import type { EntryPoint } from './entry-point.js';
import { handlerLanguage, SOURCE_EXTENSIONS, SOURCE_FILE_SUFFIX } from './runtimes.js';

/** The TorchServe built-in the entry point names (a bare name, no directory), if any. */
export function torchServeBuiltin(entry: EntryPoint): BuiltinHandler | undefined {
  return entry.dir === '' ? builtinHandler(entry.module) : undefined;
}

/** Whether the entry point names one of TorchServe's built-in handlers (a bare name, no directory). */
export function isTorchServeBuiltin(entry: EntryPoint): boolean {
  return torchServeBuiltin(entry) !== undefined;
}

/** The files that provide module `entry.module` in one directory (`prefix`: '', `sub/` or `/abs/dir/`). */
function filesIn(prefix: string, entry: EntryPoint, runtime: string): string[] {
  if (handlerLanguage(runtime) === 'node') return SOURCE_EXTENSIONS.node.map((ext) => prefix + entry.module + ext);
  const base = entry.module.replace(/\./g, '/');
  return [...SOURCE_EXTENSIONS.python.map((ext) => prefix + base + ext), `${prefix + base}/__init__.py`];
}

/** Candidates in the handler's own directory, then (for a relative directory) the model root's fallbacks. */
function candidateGroups(entry: EntryPoint, runtime: string): { own: string[]; root: string[] } {
  if (!entry.dir || entry.dir === '.') return { own: filesIn('', entry, runtime), root: [] };
  // An absolute directory is put on the path as it is: the module is looked for there and nowhere else.
  if (isAbsolute(entry.dir)) return { own: filesIn(`${entry.dir.replace(/\/+$/, '')}/`, entry, runtime), root: [] };
  return { own: filesIn(`${entry.dir.replace(/^\.\//, '')}/`, entry, runtime), root: filesIn('', entry, runtime) };
}

/**
 * Paths that would provide the module for a runtime, in lookup order: the handler's own directory first
 * (MMS puts it on PYTHONPATH), then the model root. Relative to the model and `/`-separated, except under an
 * absolute handler directory.
 */
export function moduleCandidates(entry: EntryPoint, runtime: string): string[] {
  const { own, root } = candidateGroups(entry, runtime);
  return [...own, ...root];
}

/** Answers whether a path exists: relative to the model (`sub/h.py`), or absolute for an absolute handler dir. */
export type PathExists = (path: string) => boolean | Promise<boolean>;

export type HandlerLocation =
  /** `path` provides the module; `atRoot` when the handler names a directory but only the model root has it. */
  | { kind: 'found'; path: string; atRoot: boolean }
  /** Not in the model, and a TorchServe built-in name: our worker's implementation runs, unless `builtin.className` is null. */
  | { kind: 'builtin'; builtin: BuiltinHandler; looked: string[] }
  /** Not in the model: `looked` lists every path tried, in order. */
  | { kind: 'missing'; looked: string[] }
  /** The runtime's handler is not source we can look for (LSP: a native library). */
  | { kind: 'not-source' };

/**
 * Finds the file that provides a handler's module. `exists` is asked about each candidate in lookup order
 * (see moduleCandidates) until one exists.
 */
export async function locateHandler(entry: EntryPoint, runtime: string, exists: PathExists): Promise<HandlerLocation> {
  const language = handlerLanguage(runtime);
  if (language === null) return { kind: 'not-source' };
  const { own, root } = candidateGroups(entry, runtime);
  for (const path of own) if (await exists(path)) return { kind: 'found', path, atRoot: false };
  for (const path of root) if (await exists(path)) return { kind: 'found', path, atRoot: true };
  const looked = [...own, ...root];
  // Built-ins are TorchServe's Python handlers: a node model naming one simply lacks its module.
  const builtin = language === 'python' ? torchServeBuiltin(entry) : undefined;
  if (builtin) return { kind: 'builtin', builtin, looked };
  return { kind: 'missing', looked };
}

/**
 * TorchServe style `--handler path/to/h.py[:fn]`: the files on disk the handler's module part may name,
 * in order (as given when it has a source extension, else with the runtime's extensions added).
 */
export function handlerFileCandidates(modulePart: string, runtime: string): string[] {
  if (SOURCE_FILE_SUFFIX.test(modulePart)) return [modulePart];
  return SOURCE_EXTENSIONS[handlerLanguage(runtime) ?? 'python'].map((ext) => modulePart + ext);
}
