import { createHash, randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, readFile, readdir, realpath, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { MarError, describeFsError } from '../errors.js';
import { isTorchServeBuiltin, moduleCandidates, parseEntryPoint } from '../handler/entry-point.js';
import { checkPythonEntryPoint, hasNodeExport } from '../handler/entry-point-check.js';
import { CREATE_RUNTIMES, DIGESTS_PATH, MANIFEST_PATH, MODEL_NAME_PATTERN, buildManifest, serializeManifest, type Manifest } from '../manifest/manifest.js';
import { parseModelConfig } from '../manifest/model-config.js';
import { assertValidManifest } from '../manifest/validate.js';
import { TOOL_VERSION } from '../util/package-info.js';
import type { ArchiveSink, EntryMeta, WrittenEntry } from './archive-sink.js';
import { compareArchivePaths, formatDigests } from './digests.js';
import { DirWriter } from './dir-writer.js';
import { IgnoreRules } from './ignore-rules.js';
import type { CreateProgress, ProgressCallback } from './progress.js';
import { SMALL_FILE_BYTES, digestBuffer } from './read-source.js';
import { TarGzWriter } from './tar-writer.js';
import { IGNORE_FILE, fileMode, isReservedPath, isSkippedDirName, isSkippedFileName, statInputFile, walkDirectory, type SourceEntry } from './walk.js';
import { ZipWriter } from './zip-writer.js';

import { ARCHIVE_FORMATS, type ArchiveFormat } from './formats.js';
export { ARCHIVE_FORMATS, type ArchiveFormat };

export interface CreateArchiveOptions {
  /** `--model-name`: full match of MODEL_NAME_PATTERN; also the output file name. */
  modelName: string;
  /** `--handler`: `module[.py][:function]`, a file on disk, or a TorchServe built-in name. */
  handler: string;
  /** `--runtime`: python (default), python2, python3 or node. */
  runtime?: string;
  /** `--export-path`: output directory (default: cwd); created if missing. */
  exportPath?: string;
  /** `--model-path`: a directory archived recursively (MMS). */
  modelPath?: string;
  /** `--archive-format` (default `default`). */
  archiveFormat?: ArchiveFormat;
  /** `-f/--force`: replace an existing output. */
  force?: boolean;
  serializedFile?: string;
  modelFile?: string;
  /** Comma list or array; files go to the root, a directory's contents go to the root (subdirs kept). */
  extraFiles?: string | readonly string[];
  requirementsFile?: string;
  configFile?: string;
  /** `-v/--version`: the model version. Empty means none (as TorchServe). */
  modelVersion?: string;
  description?: string;
  /** `--exclude` globs (gitignore syntax), applied to directory walks. */
  exclude?: readonly string[];
  /** Fixed time for reproducible output; defaults to the SOURCE_DATE_EPOCH environment variable. */
  sourceDateEpoch?: number;
  onProgress?: ProgressCallback;
  /** Warnings and notes for the user (one line each), e.g. the python2 warning. */
  onNote?: (message: string) => void;
  /** Aborting removes the partial output and rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Hash the finished archive for `CreateResult.sha256` (default true). It costs a second read of the output
   * (~0.6 s per GB), so the CLI only asks for it with --json.
   */
  archiveSha256?: boolean;
}

export interface CreateResult {
  /** The archive file, or the directory for no-archive. */
  path: string;
  format: ArchiveFormat;
  /** Size of the archive file (for no-archive: the total of the files written). */
  bytes: number;
  /** sha256 of the archive file; for no-archive, of MAR-INF/FILES.sha256. '' when archiveSha256 was false. */
  sha256: string;
  /** Entries written, including MAR-INF/FILES.sha256 and MAR-INF/MANIFEST.json. */
  entryCount: number;
  methods: { stored: number; deflated: number };
  /** Total size of the entries' content. */
  inputBytes: number;
  durationMs: number;
  manifest: Manifest;
  /** Every entry in write order. */
  entries: WrittenEntry[];
  /** Notes emitted during the run (also sent to onNote). */
  notes: string[];
}

/** Leaves room for `.tar.gz` and the `.<name>.tmp-<12 hex>` temp name within the usual 255-byte file name limit. */
const MODEL_NAME_MAX = 200;
const EXTENSIONS: Record<ArchiveFormat, string> = { default: '.mar', 'zip-store': '.mar', tgz: '.tar.gz', 'no-archive': '' };
/** How many small files are read (and compressed) ahead of the writer. */
const PREFETCH_WINDOW = 16;

/** Temp paths of runs in progress; removed synchronously if the process exits under us. */
const liveTemps = new Set<string>();
let exitHookInstalled = false;
function trackTemp(path: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const p of liveTemps) rmSync(p, { recursive: true, force: true });
    });
  }
  liveTemps.add(path);
}

export function outputPathFor(exportPath: string, modelName: string, format: ArchiveFormat): string {
  return join(resolve(exportPath), modelName + EXTENSIONS[format]);
}

function resolveEpoch(explicit: number | undefined): number | undefined {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 0) throw new MarError('INPUT_INVALID', `sourceDateEpoch must be a non-negative integer, got ${explicit}`);
    return explicit;
  }
  const env = process.env['SOURCE_DATE_EPOCH'];
  if (env === undefined || env === '') return undefined;
  if (!/^\d+$/.test(env.trim())) throw new MarError('INPUT_INVALID', `SOURCE_DATE_EPOCH must be a non-negative integer (seconds since 1970), got "${env}"`);
  return Number(env.trim());
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
  const rules = new IgnoreRules(['/' + base]);
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

interface Collected {
  entries: SourceEntry[];
  manifestFields: { serializedFile?: string; modelFile?: string; requirementsFile?: string; configFile?: string };
  handler: string;
  notes: string[];
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
  return { archivePath: basename(absPath), sourcePath: absPath, realPath, size: st.size, mode: fileMode(st), mtimeMs: st.mtimeMs, origin: flag };
}

async function collectInputs(o: CreateArchiveOptions, runtime: string, skipPaths: Set<string>): Promise<Collected> {
  const set = new EntrySet();
  const notes: string[] = [];
  const exclude = o.exclude ?? [];
  const manifestFields: Collected['manifestFields'] = {};

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
  const single: Array<[string | undefined, string, keyof Collected['manifestFields'] | undefined]> = [
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
  const found = moduleCandidates(entry, runtime)
    .map((c) => set.get(c))
    .find((e) => e !== undefined);
  if (!found || found.size > SMALL_FILE_BYTES) return;
  // An unreadable file is reported by the write pass, with the one-line error that stops the run.
  const source = await readFile(found.sourcePath, 'utf8').catch(() => null);
  if (source === null) return;
  const why =
    runtime === 'node'
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
    throw new MarError('USAGE', `--handler ${handler} has an empty function name after ':'; write ${base} (function handle) or ${base}:<function>`);
  }
  const candidates = moduleCandidates(entry, runtime);
  // `dir/h` found in that dir of the archive: MMS style, written as given.
  const dirPrefix = entry.dir.replace(/^\.\//, '') + '/';
  const exact = entry.dir && entry.dir !== '.' ? candidates.filter((c) => c.startsWith(dirPrefix)) : candidates;
  if (exact.some((c) => set.has(c))) return handler;

  // A file on disk, TorchServe style.
  const colon = entry.hasExplicitFunction ? handler.lastIndexOf(':') : -1;
  const modulePart = colon >= 0 ? handler.slice(0, colon) : handler;
  const diskCandidates = /\.(py|js|mjs|cjs)$/.test(modulePart)
    ? [modulePart]
    : runtime === 'node'
      ? ['.js', '.mjs', '.cjs'].map((x) => modulePart + x)
      : [modulePart + '.py'];
  for (const p of diskCandidates) {
    const st = await stat(p).catch(() => undefined);
    if (!st?.isFile()) continue;
    const e = await namedFile(p, '--handler');
    set.add(e);
    return e.archivePath + (entry.hasExplicitFunction ? `:${entry.functionName}` : '');
  }

  // `dir/h` where only a root `h.py` exists in the archive: the runtime's fallback finds it.
  if (candidates.some((c) => set.has(c))) return handler;
  if (isTorchServeBuiltin(entry)) {
    notes.push(`note: handler "${handler}" is a TorchServe built-in: only TorchServe ships it (MMS and model-server cannot run this archive)`);
    return handler;
  }
  throw new MarError(
    'HANDLER_NOT_FOUND',
    `handler module "${entry.module}" not found: looked for ${candidates.join(', ')} in the archive inputs and ${diskCandidates.join(', ')} on disk; ` +
      `add it with --model-path/--extra-files or pass the handler file's path`,
  );
}

async function pathExists(path: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MarError('OUTPUT_FAILED', `cannot check ${path}: ${describeFsError(err)}`, { cause: err });
  }
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20); // one reused buffer: no garbage per chunk
    for (let position = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/**
 * no-archive --force deletes the old output dir: refuse when it holds the model dir, an input or the cwd
 * (what the walk skipped there, such as .git or excluded files, would be lost).
 */
async function refuseToReplaceInputs(target: string, modelPath: string | undefined, entries: readonly SourceEntry[]): Promise<void> {
  const realTarget = await realpath(target).catch(() => target);
  const inside = (p: string): boolean => p === realTarget || p.startsWith(realTarget + '/');
  const modelReal = modelPath === undefined ? undefined : await realpath(modelPath).catch(() => resolve(modelPath));
  const hit = [modelReal, process.cwd(), ...entries.map((e) => e.realPath)].find((p) => p !== undefined && inside(p));
  if (hit !== undefined) {
    throw new MarError('USAGE', `--force would replace ${target}, ${hit === realTarget ? 'which is' : 'which holds'} ${hit} (an input or the current directory); choose another --export-path or --model-name`);
  }
}

/** Moves the finished temp file into place: no-clobber (link) unless forced (rename replaces atomically). */
async function publishFile(tmp: string, target: string, force: boolean): Promise<void> {
  try {
    if (force) {
      await rename(tmp, target);
      return;
    }
    try {
      await link(tmp, target);
      await unlink(tmp);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new MarError('OUTPUT_EXISTS', `${target} already exists; use -f/--force to overwrite it`);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV' && code !== 'ENOSYS') throw err;
    }
    if (await pathExists(target)) throw new MarError('OUTPUT_EXISTS', `${target} already exists; use -f/--force to overwrite it`);
    await rename(tmp, target);
  } catch (err) {
    if (err instanceof MarError) throw err;
    throw new MarError('OUTPUT_FAILED', `cannot move the archive to ${target}: ${describeFsError(err)}`, { cause: err });
  }
}

/** Swaps the finished temp dir into place; with force the old dir is moved aside first, then removed entirely. */
async function publishDir(tmp: string, target: string, force: boolean, suffix: string): Promise<void> {
  const existing = await pathExists(target);
  if (existing && !force) throw new MarError('OUTPUT_EXISTS', `${target} already exists; use -f/--force to overwrite it`);
  let aside: string | undefined;
  try {
    if (existing) {
      aside = join(dirname(target), `.${basename(target)}.old-${suffix}`);
      await rename(target, aside);
    }
    await rename(tmp, target);
  } catch (err) {
    if (aside) await rename(aside, target).catch(() => undefined);
    throw new MarError('OUTPUT_FAILED', `cannot move the output to ${target}: ${describeFsError(err)}`, { cause: err });
  }
  if (aside) await rm(aside, { recursive: true, force: true });
}

/**
 * Creates a model archive. Validates everything (inputs, handler, config, manifest) before writing, streams
 * each file once (digest + CRC + write), writes to a temp path beside the target and renames it into place.
 * On any failure the temp output is removed and an existing target is left as it was.
 */
/** Removes `dir` and its parents up to `top` (inclusive) while they are empty: what a failed run created. */
async function removeEmptyDirs(dir: string, top: string): Promise<void> {
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty (someone else wrote there) or already gone: keep it and its parents
    }
    if (d === resolve(top) || d === dirname(d)) return;
  }
}

export async function createArchive(options: CreateArchiveOptions): Promise<CreateResult> {
  const started = performance.now();
  const notes: string[] = [];
  const note = (m: string): void => {
    notes.push(m);
    options.onNote?.(m);
  };

  const modelName = options.modelName;
  if (typeof modelName !== 'string' || !MODEL_NAME_PATTERN.test(modelName)) {
    throw new MarError(
      'NAME_INVALID',
      `model name ${JSON.stringify(modelName)} is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_\\-.]*$ (letters, digits, _ - .; no spaces or newlines)`,
    );
  }
  if (modelName.length > MODEL_NAME_MAX) {
    throw new MarError(
      'NAME_INVALID',
      `model name is ${modelName.length} characters long; use at most ${MODEL_NAME_MAX} (it names the output file, and file names stop at 255 bytes)`,
    );
  }
  // Like the name, the version ends up in URLs (/models/<name>/<version>) and log lines: no newline may slip in.
  if (options.modelVersion !== undefined && /[\x00-\x1f\x7f]/.test(options.modelVersion)) {
    throw new MarError('INPUT_INVALID', `model version ${JSON.stringify(options.modelVersion)} has a control character (a newline?); remove it`);
  }
  const runtime = options.runtime ?? 'python';
  if (!(CREATE_RUNTIMES as readonly string[]).includes(runtime)) {
    throw new MarError('INPUT_INVALID', `runtime "${runtime}" is not supported; use one of ${CREATE_RUNTIMES.join(', ')}`);
  }
  if (runtime === 'python2') note('warning: runtime python2 is archived as given (MMS accepts it), but model-server refuses python2 models');
  const format = options.archiveFormat ?? 'default';
  if (!(ARCHIVE_FORMATS as readonly string[]).includes(format)) {
    throw new MarError('INPUT_INVALID', `archive format "${format}" is not supported; use one of ${ARCHIVE_FORMATS.join(', ')}`);
  }
  const epoch = resolveEpoch(options.sourceDateEpoch);
  const now = new Date();
  const fixedTime = epoch === undefined ? undefined : new Date(epoch * 1000);
  const force = options.force ?? false;

  const exportDir = resolve(options.exportPath ?? process.cwd());
  const target = outputPathFor(exportDir, modelName, format);
  const suffix = randomBytes(6).toString('hex');
  const tmp = join(exportDir, `.${basename(target)}.tmp-${suffix}`);

  // Fail fast on an unusable export path or an existing output, before reading any input.
  const exportSt = await stat(exportDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined; // created below
    if (err.code === 'ENOTDIR') return null;
    throw new MarError('OUTPUT_FAILED', `cannot use --export-path ${exportDir}: ${describeFsError(err)}`, { cause: err });
  });
  if (exportSt === null || (exportSt && !exportSt.isDirectory())) {
    throw new MarError('OUTPUT_FAILED', `--export-path ${exportDir} is not a directory (a file is in the way); choose a directory`);
  }
  const existing = await pathExists(target);
  if (existing && !force) throw new MarError('OUTPUT_EXISTS', `${target} already exists; use -f/--force to overwrite it`);
  if (existing && format !== 'no-archive' && existing.isDirectory()) {
    throw new MarError('OUTPUT_FAILED', `${target} is a directory; remove it or choose another --export-path`);
  }

  // Never archive our own output (an export path inside the model dir).
  const collected = await collectInputs(options, runtime, new Set([target, tmp]));
  for (const n of collected.notes) note(n);
  if (existing?.isDirectory()) await refuseToReplaceInputs(target, options.modelPath, collected.entries);
  const createdOn = fixedTime ?? now;
  const manifest = buildManifest({
    modelName,
    handler: collected.handler,
    runtime,
    archiverVersion: TOOL_VERSION,
    createdOn,
    ...(options.modelVersion ? { modelVersion: options.modelVersion } : {}),
    ...(options.description ? { description: options.description } : {}),
    ...collected.manifestFields,
  });
  assertValidManifest(manifest, MANIFEST_PATH);
  const manifestBytes = serializeManifest(manifest);

  // The first directory this run creates (undefined if the export path existed): removed again on failure.
  let createdDir: string | undefined;
  try {
    createdDir = await mkdir(exportDir, { recursive: true });
  } catch (err) {
    throw new MarError('OUTPUT_FAILED', `cannot create --export-path ${exportDir}: ${describeFsError(err)}`, { cause: err });
  }
  const exportStat = await stat(exportDir);
  if (!exportStat.isDirectory()) throw new MarError('OUTPUT_FAILED', `--export-path ${exportDir} is not a directory`);

  const entries = collected.entries;
  const progress: CreateProgress = {
    bytesDone: 0,
    bytesTotal: entries.reduce((s, e) => s + e.size, 0) + manifestBytes.length,
    entriesDone: 0,
    entriesTotal: entries.length + 2,
  };
  const onBytes = (n: number): void => {
    progress.bytesDone += n;
    options.onProgress?.(progress);
  };
  const signal = options.signal;

  trackTemp(tmp);
  let sink: ArchiveSink<unknown> | undefined;
  try {
    signal?.throwIfAborted();
    const mtimeSec = Math.floor(createdOn.getTime() / 1000);
    if (format === 'tgz') sink = (await TarGzWriter.create(tmp, { root: modelName, mtimeSec, signal })) as ArchiveSink<unknown>;
    else if (format === 'no-archive') sink = (await DirWriter.create(tmp, { signal })) as ArchiveSink<unknown>;
    else sink = (await ZipWriter.create(tmp, { policy: format === 'zip-store' ? 'store' : 'auto', signal })) as ArchiveSink<unknown>;
    const s = sink;

    const written: WrittenEntry[] = [];
    const prepared = new Map<number, Promise<unknown>>();
    const isSmall = (e: SourceEntry): boolean => e.size <= SMALL_FILE_BYTES;
    const schedule = (from: number): void => {
      for (let j = from; j < Math.min(entries.length, from + PREFETCH_WINDOW); j++) {
        if (prepared.has(j) || !isSmall(entries[j]!)) continue;
        const p = s.prepare(entries[j]!);
        p.catch(() => undefined); // awaited in order below; this only silences the early rejection
        prepared.set(j, p);
      }
    };
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      schedule(i);
      const meta: EntryMeta = { archivePath: e.archivePath, mtime: fixedTime ?? new Date(e.mtimeMs), mode: e.mode };
      if (isSmall(e)) {
        const p = prepared.get(i)!;
        prepared.delete(i);
        written.push(await s.addPrepared(meta, await p, onBytes));
      } else {
        written.push(await s.addStreamed(meta, e, onBytes));
      }
      progress.entriesDone++;
    }

    const metaTime = fixedTime ?? now;
    const digestLines = written.map((w) => ({ sha256: w.sha256, size: w.size, path: w.archivePath }));
    digestLines.push({ sha256: digestBuffer(manifestBytes).sha256, size: manifestBytes.length, path: MANIFEST_PATH });
    const digestBytes = formatDigests(digestLines);
    written.push(await s.addBuffer({ archivePath: DIGESTS_PATH, mtime: metaTime, mode: 0o644 }, digestBytes));
    progress.entriesDone++;
    written.push(await s.addBuffer({ archivePath: MANIFEST_PATH, mtime: metaTime, mode: 0o644 }, manifestBytes));
    progress.entriesDone++;
    onBytes(manifestBytes.length);

    const bytes = await s.finish();
    signal?.throwIfAborted();
    const sha256 =
      format === 'no-archive'
        ? createHash('sha256').update(digestBytes).digest('hex')
        : options.archiveSha256 === false
          ? ''
          : await sha256OfFile(tmp);
    if (format === 'no-archive') await publishDir(tmp, target, force, suffix);
    else await publishFile(tmp, target, force);
    liveTemps.delete(tmp);

    const methods = { stored: 0, deflated: 0 };
    for (const w of written) methods[w.method]++;
    return {
      path: target,
      format,
      bytes,
      sha256,
      entryCount: written.length,
      methods,
      inputBytes: written.reduce((s2, w) => s2 + w.size, 0),
      durationMs: performance.now() - started,
      manifest,
      entries: written,
      notes,
    };
  } catch (err) {
    await sink?.abort().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    liveTemps.delete(tmp);
    if (createdDir !== undefined) await removeEmptyDirs(exportDir, createdDir);
    if (err instanceof MarError || (signal?.aborted && err === signal.reason)) throw err;
    // Safety net: an fs/stream error that no writer wrapped still becomes one actionable line.
    throw new MarError('OUTPUT_FAILED', `cannot write ${target}: ${describeFsError(err)}`, { cause: err });
  }
}
