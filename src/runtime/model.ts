/**
 * openModel: turns a .mar / .tar.gz / directory into a model directory plus the facts a worker needs
 * (name, handler, runtime, manifest, config). An archive is opened through the persistent extraction cache
 * (extraction-cache.ts); a directory is used in place.
 */

import { readFile, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { type ArchiveLimits, checkManifestSize, type LimitHint, resolveArchiveLimits } from '../archive/limits.js';
import { describeFsError, MarError } from '../errors.js';
import { type EntryPoint, parseEntryPoint } from '../handler/entry-point.js';
import { locateHandler } from '../handler/locate.js';
import { resolveRuntime, type WorkerRuntime } from '../handler/runtimes.js';
import { discoverManifest } from '../manifest/discover.js';
import { MANIFEST_PATH, type Manifest, MODEL_NAME_PATTERN } from '../manifest/manifest.js';
import type { ModelConfig } from '../manifest/model-config.js';
import { acquireExtraction, type CacheCap } from './extraction-cache.js';

export interface OpenedModel {
  name: string;
  /** Absolute model directory (the extracted archive, or the directory given). */
  dir: string;
  manifest: Manifest | null;
  manifestKind: 'mar-inf' | 'legacy' | 'none';
  /** The effective handler string (caller's override, else the manifest's). */
  handler: string;
  entry: EntryPoint;
  runtime: WorkerRuntime;
  /** What the caller passed (absolute path). */
  source: string;
  modelVersion?: string;
  /** The parsed model.configFile (TorchServe model-config YAML), if the manifest names one. */
  config: ModelConfig | null;
  /** Gives up this open (the extraction stays in the cache for the next open). Idempotent. */
  release(): Promise<void>;
}

export interface OpenModelOptions {
  /** Overrides the manifest's model name (required when there is no manifest, else the file name is used). */
  modelName?: string;
  /** Overrides the manifest's model.handler, e.g. `my_handler:handle`. */
  handler?: string;
  /** Overrides the manifest's runtime (python, python3, node). */
  runtime?: string;
  /** Cache root for extracted archives (default $MAR_CACHE_DIR, else the platform's cache dir; see extraction-cache.ts). */
  cacheDir?: string;
  /** The cache's size cap (default $MAR_CACHE_MAX_SIZE, else a quarter of the disk space it could use). */
  cacheMaxSize?: CacheCap;
  /** How the caller's user sets the overrides, for the hints in errors: CLI flags (default) or HTTP parameters. */
  hintStyle?: HintStyle;
  /** false: a handler module missing from the model is left for the worker to report (TorchServe's register). Default true. */
  checkHandler?: boolean;
  /** The archive limits (manifest size, entries, size, ratio) to load it under; default DEFAULT_ARCHIVE_LIMITS. */
  limits?: Partial<ArchiveLimits>;
  /** How a limit error says to raise the limit: 'config' (the server's keys) or 'extract' (default: unpack it first). */
  limitHint?: LimitHint;
}

export type HintStyle = 'cli' | 'http';

/** "--handler module:function" on the command line, "handler=module:function" for a register call. */
function overrideHint(style: HintStyle | undefined, key: 'handler' | 'model_name', value: string): string {
  return style === 'http' ? `${key}=${value}` : `--${key.replace('_', '-')} ${value}`;
}

const ARCHIVE_SUFFIX = /(\.tar\.gz|\.tgz|\.mar|\.zip|\.tar)$/i;

export async function openModel(source: string, options: OpenModelOptions = {}): Promise<OpenedModel> {
  const abs = resolve(source);
  let st;
  try {
    st = await stat(abs);
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `model ${source} not found: ${describeFsError(err)}`, { cause: err });
  }
  if (st.isDirectory()) return describeModel(abs, abs, options, async () => {});
  if (!st.isFile()) throw new MarError('INPUT_INVALID', `model ${source} is neither a file nor a directory`);

  const lease = await acquireExtraction(
    abs,
    {
      ...(options.cacheDir !== undefined ? { dir: options.cacheDir } : {}),
      ...(options.cacheMaxSize !== undefined ? { maxSize: options.cacheMaxSize } : {}),
    },
    { limits: resolveArchiveLimits(options.limits), limitHint: limitHint(options) },
  );
  try {
    return await describeModel(abs, lease.dir, options, lease.release);
  } catch (err) {
    await lease.discard();
    throw err;
  }
}

/** The server's limit errors name its config keys; `predict` has no limit flags: it says to extract first. */
function limitHint(options: OpenModelOptions): LimitHint {
  return options.limitHint ?? 'extract';
}

/** Reads a metadata file (manifest, model config) that may be missing, refusing one over the manifest size limit. */
async function readOptional(path: string, options: OpenModelOptions, label = path): Promise<Buffer | null> {
  try {
    checkManifestSize(label, (await stat(path)).size, resolveArchiveLimits(options.limits), limitHint(options));
    return await readFile(path);
  } catch (err) {
    if (err instanceof MarError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new MarError('INPUT_INVALID', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  }
}

function insideDir(dir: string, rel: string): string | null {
  const p = resolve(dir, rel);
  const r = relative(dir, p);
  return r === '' || r.startsWith('..') || isAbsolute(r) ? null : p;
}

async function describeModel(source: string, dir: string, options: OpenModelOptions, release: () => Promise<void>): Promise<OpenedModel> {
  let manifest: Manifest | null = null;
  let manifestKind: OpenedModel['manifestKind'] = 'none';
  const found = await discoverManifest(
    (path) => readOptional(join(dir, path), options, `${path} in ${source}`),
    (path) => `${path} in ${source}`,
  );
  if (found.kind !== 'none') {
    if (found.error) throw found.error;
    const json = found.json as Manifest | null;
    if (!json || typeof json !== 'object' || Array.isArray(json) || typeof json.model !== 'object' || !json.model) {
      throw new MarError('MANIFEST_INVALID', `${found.path} in ${source} has no "model" object; rebuild the archive with model-archiver`);
    }
    manifest = json;
    manifestKind = found.kind;
  }

  const fileName = basename(source).replace(ARCHIVE_SUFFIX, '');
  const manifestName = typeof manifest?.model.modelName === 'string' && manifest.model.modelName ? manifest.model.modelName : undefined;
  const name = options.modelName ?? manifestName ?? fileName;
  if (!MODEL_NAME_PATTERN.test(name)) {
    throw new MarError(
      'NAME_INVALID',
      `model name ${JSON.stringify(name)} is invalid: use letters, digits, '_', '-' and '.', starting with a letter or digit (pass ${overrideHint(options.hintStyle, 'model_name', 'NAME')})`,
    );
  }

  const manifestHandler = typeof manifest?.model.handler === 'string' && manifest.model.handler ? manifest.model.handler : undefined;
  const handler = options.handler ?? manifestHandler;
  if (!handler) {
    throw new MarError(
      'HANDLER_NOT_FOUND',
      manifest
        ? `the manifest of ${source} names no model.handler; pass ${overrideHint(options.hintStyle, 'handler', 'module:function')}`
        : `${source} has no ${MANIFEST_PATH}; pass ${overrideHint(options.hintStyle, 'handler', 'module:function')} ` +
            `(and ${overrideHint(options.hintStyle, 'model_name', 'NAME')}) to run it`,
    );
  }
  const runtime = resolveRuntime(options.runtime ?? (typeof manifest?.runtime === 'string' ? manifest.runtime : undefined));
  const entry = parseEntryPoint(handler);
  if (options.checkHandler !== false) await checkHandlerModule(dir, entry, runtime, source, options.hintStyle);

  let config: ModelConfig | null = null;
  const configFile = typeof manifest?.model.configFile === 'string' ? manifest.model.configFile : undefined;
  if (configFile) {
    const path = insideDir(dir, configFile);
    if (!path) throw new MarError('MANIFEST_INVALID', `model.configFile ${JSON.stringify(configFile)} points outside the model directory`);
    const text = await readOptional(path, options, `${configFile} in ${source}`);
    if (text === null) {
      throw new MarError(
        'CONFIG_INVALID',
        `model.configFile ${configFile} named in the manifest is missing from ${source}; rebuild the archive`,
      );
    }
    // loaded only here: the YAML parser costs ~25 ms of startup that models without a config file don't need
    const { parseModelConfig } = await import('../manifest/model-config.js');
    config = parseModelConfig(text.toString('utf8'), configFile);
  }

  let released = false;
  const model: OpenedModel = {
    name,
    dir,
    manifest,
    manifestKind,
    handler,
    entry,
    runtime,
    source,
    config,
    release: async () => {
      if (released) return;
      released = true;
      await release();
    },
  };
  const version = manifest?.model.modelVersion;
  if (typeof version === 'string' && version) model.modelVersion = version;
  return model;
}

async function checkHandlerModule(
  dir: string,
  entry: EntryPoint,
  runtime: WorkerRuntime,
  source: string,
  style?: HintStyle,
): Promise<void> {
  if (!entry.module) throw new MarError('HANDLER_NOT_FOUND', `handler ${JSON.stringify(entry.raw)} names no module; use module[:function]`);
  const location = await locateHandler(entry, runtime, (path) =>
    stat(resolve(dir, path)).then(
      () => true,
      () => false,
    ),
  );
  if (location.kind === 'found') return;
  if (location.kind === 'builtin') {
    // Ours runs in the Python worker (which says so, and names what it lacks, at load).
    if (location.builtin.className !== null) return;
    throw new MarError(
      'HANDLER_NOT_FOUND',
      `handler ${entry.module} is a TorchServe built-in handler that only TorchServe ships; package a custom handler with the archive`,
    );
  }
  const looked = location.kind === 'missing' ? location.looked.map((c) => relative(dir, resolve(dir, c)) || c).join(', ') : '';
  throw new MarError(
    'HANDLER_NOT_FOUND',
    `handler module ${entry.module} not found in ${source} (looked for ${looked}); check the handler name (${style === 'http' ? 'the handler parameter' : '--handler'}) or add the file to the archive`,
  );
}
