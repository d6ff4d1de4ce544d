/**
 * Gathering what goes into an archive: the files (model dir walk, named files, extra files), where the handler is
 * (in the inputs, or a file on disk added at the root, or a TorchServe built-in) and the manifest's file fields.
 * Everything is checked here, before a byte is written.
 */

import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';
import { describeBuiltin } from '../handler/builtins.js';
import { parseEntryPoint } from '../handler/entry-point.js';
import { checkPythonEntryPoint, hasNodeExport } from '../handler/entry-point-check.js';
import { handlerFileCandidates, isTorchServeBuiltin, locateHandler } from '../handler/locate.js';
import { handlerLanguage } from '../handler/runtimes.js';
import { parseModelConfig } from '../manifest/model-config.js';
import { compareArchivePaths } from './digests.js';
import { IgnoreRules } from './ignore-rules.js';
import type { CreateArchiveOptions } from './pack.js';
import { SMALL_FILE_BYTES } from './read-source.js';
import {
  fileMode,
  IGNORE_FILE,
  isReservedPath,
  isSkippedDirName,
  isSkippedFileName,
  type SourceEntry,
  statInputFile,
  walkDirectory,
} from './walk.js';

/** The options that name inputs. */
export type InputOptions = Pick<
  CreateArchiveOptions,
  'handler' | 'modelPath' | 'serializedFile' | 'modelFile' | 'extraFiles' | 'requirementsFile' | 'configFile' | 'exclude'
>;

/** What gatherInputs found: the entries in archive order, the manifest's fields and the notes for the user. */
export interface GatheredInputs {
  entries: SourceEntry[];
  manifestFields: { serializedFile?: string; modelFile?: string; requirementsFile?: string; configFile?: string };
  /** The manifest's model.handler. */
  handler: string;
  notes: string[];
}

function splitList(value: string | readonly string[] | undefined): string[] {
  if (value === undefined) return [];
  const items = typeof value === 'string' ? value.split(',') : value.flatMap((v) => v.split(','));
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

/** Expands a glob in the last path component (`dir/*.json`), as TorchServe >= 0.8 does for --extra-files. */
async function expandExtra(item: string): Promise<string[]> {
  const base = basename(item);
  if (!/[*?[]/.test(base)) return [item];
  const dir = dirname(item);
  const rules = new IgnoreRules([`/${base}`]);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `--extra-files ${item}: cannot list ${dir}: ${describeFsError(err)}`, { cause: err });
  }
  // As Python's glob (TorchServe) and the shell: `*` does not match hidden names unless the pattern starts with '.'.
  // What a directory walk skips (__pycache__, *.pyc, .DS_Store, *.mar) is not picked up by a wildcard either.
  const hiddenOk = base.startsWith('.');
  const skipped = (n: string): boolean => (n.startsWith('.') ? !hiddenOk : isSkippedDirName(n)) || isSkippedFileName(n);
  return names
    .filter((n) => rules.isIgnored(n, false) && !skipped(n))
    .sort()
    .map((n) => (dir === '.' && !item.startsWith('./') ? n : join(dir, n)));
}

/** Adds entries keyed by archive path; the same real file twice is fine, two different files are a collision. */
class EntrySet {
  readonly #byPath = new Map<string, SourceEntry>();

  add(e: SourceEntry): void {
    if (/[\x00-\x1f\x7f\\]/.test(e.archivePath)) {
      throw new MarError(
        'INPUT_INVALID',
        `${JSON.stringify(e.sourcePath)} has a control character or backslash in its name, which zip readers mangle; rename it or exclude it`,
      );
    }
    const prev = this.#byPath.get(e.archivePath);
    if (prev) {
      if (prev.realPath === e.realPath) return;
      throw new MarError(
        'ENTRY_COLLISION',
        `two inputs land on archive path ${e.archivePath}: ${prev.sourcePath} (${prev.origin}) and ${e.sourcePath} (${e.origin}); rename one or exclude it`,
      );
    }
    this.#byPath.set(e.archivePath, e);
  }

  has(path: string): boolean {
    return this.#byPath.has(path);
  }

  get(path: string): SourceEntry | undefined {
    return this.#byPath.get(path);
  }

  sorted(): SourceEntry[] {
    return [...this.#byPath.values()].sort((a, b) => compareArchivePaths(a.archivePath, b.archivePath));
  }
}

async function namedFile(path: string, flag: string): Promise<SourceEntry> {
  const { st, realPath, absPath } = await statInputFile(path, flag);
  return {
    archivePath: basename(absPath),
    sourcePath: absPath,
    realPath,
    size: st.size,
    mode: fileMode(st),
    mtimeMs: st.mtimeMs,
    origin: flag,
  };
}

/** Gathers and checks every input; `skipPaths` (our own output and temp path) are never taken. */
export async function gatherInputs(o: InputOptions, runtime: string, skipPaths: ReadonlySet<string>): Promise<GatheredInputs> {
  const set = new EntrySet();
  const notes: string[] = [];
  const exclude = o.exclude ?? [];
  const manifestFields: GatheredInputs['manifestFields'] = {};

  if (o.modelPath !== undefined) {
    const modelPath = o.modelPath;
    let ignoreLines: string[] = [];
    try {
      ignoreLines = IgnoreRules.parse(await readFile(join(modelPath, IGNORE_FILE), 'utf8'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        throw new MarError('INPUT_INVALID', `cannot read ${join(modelPath, IGNORE_FILE)}: ${describeFsError(err)}`, { cause: err });
      }
    }
    const ignore = new IgnoreRules([...ignoreLines, ...exclude]);
    for (const e of await walkDirectory(modelPath, { ignore, skipPaths, origin: '--model-path' })) set.add(e);
  }

  // TorchServe's copy order; each lands at the root under its basename.
  const single: Array<[string | undefined, string, keyof GatheredInputs['manifestFields'] | undefined]> = [
    [o.modelFile, '--model-file', 'modelFile'],
    [o.serializedFile, '--serialized-file', 'serializedFile'],
  ];
  for (const [path, flag, field] of single) {
    if (!path) continue;
    const e = await namedFile(path, flag);
    set.add(e);
    if (field) manifestFields[field] = e.archivePath;
  }

  const extraIgnore = new IgnoreRules([...exclude]);
  for (const item of splitList(o.extraFiles)) {
    const paths = await expandExtra(item);
    if (paths.length === 0) notes.push(`warning: --extra-files pattern ${item} matched no file`);
    for (const p of paths) {
      const abs = resolve(p);
      let st;
      try {
        st = await stat(abs);
      } catch {
        // Let statInputFile produce the precise error (dangling link, missing file).
        await statInputFile(p, '--extra-files');
        continue;
      }
      if (st.isDirectory()) {
        for (const e of await walkDirectory(p, { ignore: extraIgnore, skipPaths, origin: '--extra-files' })) set.add(e);
      } else {
        const e = await namedFile(p, '--extra-files');
        if (!isReservedPath(e.archivePath)) set.add(e);
      }
    }
  }

  for (const [path, flag, field] of [
    [o.requirementsFile, '--requirements-file', 'requirementsFile'],
    [o.configFile, '--config-file', 'configFile'],
  ] as const) {
    if (!path) continue;
    const e = await namedFile(path, flag);
    if (field === 'configFile') {
      parseModelConfig(await readFile(e.sourcePath, 'utf8'), path);
    }
    set.add(e);
    manifestFields[field] = e.archivePath;
  }

  const handler = await resolveHandler(o.handler, runtime, set, notes);
  await warnOnEntryPoint(handler, runtime, set, notes);
  return { entries: set.sorted(), manifestFields, handler, notes };
}

/**
 * A handler module that exists but has no entry point the workers can resolve (no `handle`, two classes, ...)
 * archives fine and fails at load; say so now. A warning, not an error: the check reads source, it runs nothing.
 */
async function warnOnEntryPoint(handler: string, runtime: string, set: EntrySet, notes: string[]): Promise<void> {
  const entry = parseEntryPoint(handler);
  if (isTorchServeBuiltin(entry)) return;
  const location = await locateHandler(entry, runtime, (path) => set.has(path));
  const found = location.kind === 'found' ? set.get(location.path) : undefined;
  if (!found || found.size > SMALL_FILE_BYTES) return;
  // An unreadable file is reported by the write pass, with the one-line error that stops the run.
  const source = await readFile(found.sourcePath, 'utf8').catch(() => null);
  if (source === null) return;
  const why =
    handlerLanguage(runtime) === 'node'
      ? hasNodeExport(source, entry.functionName)
        ? null
        : `${found.archivePath} exports no ${entry.functionName} (nor a default function or a class)`
      : checkPythonEntryPoint(source, entry.functionName);
  if (why) notes.push(`warning: handler "${handler}" will not load: ${why}`);
}

/**
 * The handler must be provided by the archive: a module among the entries (MMS), or a file on disk that we add
 * at the root (TorchServe: `--handler path/h.py[:fn]`), or a TorchServe built-in name. Returns the manifest value.
 */
async function resolveHandler(raw: string, runtime: string, set: EntrySet, notes: string[]): Promise<string> {
  // A Windows-style path (`code\h.py`) means the same file; a backslash in the manifest breaks MMS's import.
  const handler = raw.trim().replace(/\\/g, '/');
  if (handler === '') throw new MarError('USAGE', '--handler must not be empty');
  const entry = parseEntryPoint(handler);
  if (handler.endsWith(':')) {
    // MMS and TorchServe then look up an attribute named '' and fall back to a class: not what "h:" suggests.
    const base = handler.slice(0, -1);
    throw new MarError(
      'USAGE',
      `--handler ${handler} has an empty function name after ':'; write ${base} (function handle) or ${base}:<function>`,
    );
  }
  const location = await locateHandler(entry, runtime, (path) => set.has(path));
  // `dir/h` found in that dir of the archive: MMS style, written as given.
  if (location.kind === 'found' && !location.atRoot) return handler;

  // A file on disk, TorchServe style.
  const colon = entry.hasExplicitFunction ? handler.lastIndexOf(':') : -1;
  const diskCandidates = handlerFileCandidates(colon >= 0 ? handler.slice(0, colon) : handler, runtime);
  for (const p of diskCandidates) {
    const st = await stat(p).catch(() => undefined);
    if (!st?.isFile()) continue;
    const e = await namedFile(p, '--handler');
    set.add(e);
    return e.archivePath + (entry.hasExplicitFunction ? `:${entry.functionName}` : '');
  }

  // `dir/h` where only a root `h.py` exists in the archive: the runtime's fallback finds it.
  if (location.kind === 'found') return handler;
  if (location.kind === 'builtin') {
    notes.push(`note: handler "${handler}" is ${describeBuiltin(location.builtin)}`);
    return handler;
  }
  const looked = location.kind === 'missing' ? location.looked : [];
  throw new MarError(
    'HANDLER_NOT_FOUND',
    `handler module "${entry.module}" not found: looked for ${looked.join(', ')} in the archive inputs and ${diskCandidates.join(', ')} on disk; ` +
      `add it with --model-path/--extra-files or pass the handler file's path`,
  );
}
