/**
 * createArchive: checks the options, gathers the inputs (gather-inputs.ts), builds the manifest and publishes
 * the archive (publish-archive.ts).
 */

import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';
import { CREATE_RUNTIMES, runtimeRefusal } from '../handler/runtimes.js';
import { buildManifest, MANIFEST_PATH, type Manifest, MODEL_NAME_PATTERN, serializeManifest } from '../manifest/manifest.js';
import { assertValidManifest } from '../manifest/validate.js';
import { TOOL_VERSION } from '../util/package-info.js';
import type { WrittenEntry } from './archive-sink.js';
import { ARCHIVE_FORMATS, type ArchiveFormat } from './formats.js';
import { gatherInputs } from './gather-inputs.js';
import type { ProgressCallback } from './progress.js';
import { pathExists, publishArchive, refuseToReplaceInputs } from './publish-archive.js';

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

export function outputPathFor(exportPath: string, modelName: string, format: ArchiveFormat): string {
  return join(resolve(exportPath), modelName + EXTENSIONS[format]);
}

function resolveEpoch(explicit: number | undefined): number | undefined {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 0)
      throw new MarError('INPUT_INVALID', `sourceDateEpoch must be a non-negative integer, got ${explicit}`);
    return explicit;
  }
  const env = process.env['SOURCE_DATE_EPOCH'];
  if (env === undefined || env === '') return undefined;
  if (!/^\d+$/.test(env.trim()))
    throw new MarError('INPUT_INVALID', `SOURCE_DATE_EPOCH must be a non-negative integer (seconds since 1970), got "${env}"`);
  return Number(env.trim());
}

/**
 * Creates a model archive. Validates everything (inputs, handler, config, manifest) before writing, streams
 * each file once (digest + CRC + write), writes to a temp path beside the target and renames it into place.
 * On any failure the temp output is removed and an existing target is left as it was.
 */
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
    throw new MarError(
      'INPUT_INVALID',
      `model version ${JSON.stringify(options.modelVersion)} has a control character (a newline?); remove it`,
    );
  }
  const runtime = options.runtime ?? 'python';
  if (!CREATE_RUNTIMES.includes(runtime)) {
    throw new MarError('INPUT_INVALID', `runtime "${runtime}" is not supported; use one of ${CREATE_RUNTIMES.join(', ')}`);
  }
  if (runtimeRefusal(runtime) !== null) {
    note(`warning: runtime ${runtime} is archived as given (MMS accepts it), but model-server refuses ${runtime} models`);
  }
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
  const collected = await gatherInputs(options, runtime, new Set([target, tmp]));
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

  const { bytes, sha256, written } = await publishArchive({
    format,
    target,
    tmp,
    suffix,
    force,
    modelName,
    entries: collected.entries,
    manifestBytes,
    fixedTime,
    now,
    createdOn,
    exportDir,
    createdDir,
    archiveSha256: options.archiveSha256 !== false,
    onProgress: options.onProgress,
    signal: options.signal,
  });
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
}
