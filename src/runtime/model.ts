/**
 * openModel: turns a .mar / .tar.gz / directory into a model directory plus the facts a worker needs
 * (name, handler, runtime, manifest, config). Archives are extracted once into a cache keyed by their sha256,
 * shared by concurrent opens in this process, and removed when the last user releases them.
 *
 * Cache layout: <root>/<sha256>/{model/, complete, owners/<pid>}. `complete` is written after extraction;
 * `owners/<pid>` marks a live user process, so a process never deletes an entry another live process uses,
 * and entries left by dead processes are swept on the first open.
 */

import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, rmSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';
import { isTorchServeBuiltin, moduleCandidates, parseEntryPoint, type EntryPoint } from '../handler/entry-point.js';
import {
  LEGACY_MANIFEST_PATH,
  MANIFEST_PATH,
  MODEL_NAME_PATTERN,
  migrateLegacyManifest,
  parseManifestJson,
  type Manifest,
} from '../manifest/manifest.js';
import type { ModelConfig } from '../manifest/model-config.js';
import { resolveRuntime, type WorkerRuntime } from './launchers.js';

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
  /** Gives up this open; the cached extraction is deleted when no open in this process uses it. Idempotent. */
  release(): Promise<void>;
}

export interface OpenModelOptions {
  /** Overrides the manifest's model name (required when there is no manifest, else the file name is used). */
  modelName?: string;
  /** Overrides the manifest's model.handler, e.g. `my_handler:handle`. */
  handler?: string;
  /** Overrides the manifest's runtime (python, python3, node). */
  runtime?: string;
  /** Cache root for extracted archives (default $MAR_CACHE_DIR or <tmpdir>/mar-tools-<uid>/models). */
  cacheDir?: string;
  /** How the caller's user sets the overrides, for the hints in errors: CLI flags (default) or HTTP parameters. */
  hintStyle?: HintStyle;
}

export type HintStyle = 'cli' | 'http';

/** "--handler module:function" on the command line, "handler=module:function" for a register call. */
function overrideHint(style: HintStyle | undefined, key: 'handler' | 'model_name', value: string): string {
  return style === 'http' ? `${key}=${value}` : `--${key.replace('_', '-')} ${value}`;
}

export function defaultCacheDir(): string {
  const env = process.env['MAR_CACHE_DIR'];
  if (env) return resolve(env);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `mar-tools-${uid}`, 'models');
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

  const lease = await acquireExtraction(abs, options.cacheDir);
  try {
    return await describeModel(abs, lease.dir, options, lease.release);
  } catch (err) {
    await lease.release();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Describing a model directory.

async function readOptional(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new MarError('INPUT_INVALID', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function insideDir(dir: string, rel: string): string | null {
  const p = resolve(dir, rel);
  const r = relative(dir, p);
  return r === '' || r.startsWith('..') || isAbsolute(r) ? null : p;
}

async function describeModel(
  source: string,
  dir: string,
  options: OpenModelOptions,
  release: () => Promise<void>,
): Promise<OpenedModel> {
  let manifest: Manifest | null = null;
  let manifestKind: OpenedModel['manifestKind'] = 'none';
  const current = await readOptional(join(dir, MANIFEST_PATH));
  if (current) {
    const parsed = parseManifestJson(current, `${MANIFEST_PATH} in ${source}`);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as Manifest).model !== 'object' || !(parsed as Manifest).model) {
      throw new MarError('MANIFEST_INVALID', `${MANIFEST_PATH} in ${source} has no "model" object; rebuild the archive with model-archiver`);
    }
    manifest = parsed as Manifest;
    manifestKind = 'mar-inf';
  } else {
    const legacy = await readOptional(join(dir, LEGACY_MANIFEST_PATH));
    if (legacy) {
      manifest = migrateLegacyManifest(parseManifestJson(legacy, `${LEGACY_MANIFEST_PATH} in ${source}`));
      manifestKind = 'legacy';
    }
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
  await checkHandlerModule(dir, entry, runtime, source, options.hintStyle);

  let config: ModelConfig | null = null;
  const configFile = typeof manifest?.model.configFile === 'string' ? manifest.model.configFile : undefined;
  if (configFile) {
    const path = insideDir(dir, configFile);
    if (!path) throw new MarError('MANIFEST_INVALID', `model.configFile ${JSON.stringify(configFile)} points outside the model directory`);
    const text = await readOptional(path);
    if (text === null) {
      throw new MarError('CONFIG_INVALID', `model.configFile ${configFile} named in the manifest is missing from ${source}; rebuild the archive`);
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

async function checkHandlerModule(dir: string, entry: EntryPoint, runtime: WorkerRuntime, source: string, style?: HintStyle): Promise<void> {
  if (!entry.module) throw new MarError('HANDLER_NOT_FOUND', `handler ${JSON.stringify(entry.raw)} names no module; use module[:function]`);
  let candidates: string[];
  if (entry.dir && isAbsolute(entry.dir)) {
    const base = { ...entry, dir: '' };
    candidates = moduleCandidates(base, runtime).map((c) => join(entry.dir, c));
  } else {
    candidates = moduleCandidates(entry, runtime).map((c) => join(dir, c));
  }
  for (const c of candidates) if (await exists(c)) return;
  if (runtime !== 'node' && isTorchServeBuiltin(entry)) {
    throw new MarError(
      'HANDLER_NOT_FOUND',
      `handler ${entry.module} is a TorchServe built-in handler, which needs TorchServe and torch; package a custom handler with the archive`,
    );
  }
  const looked = candidates.map((c) => relative(dir, c) || c).join(', ');
  throw new MarError(
    'HANDLER_NOT_FOUND',
    `handler module ${entry.module} not found in ${source} (looked for ${looked}); check the handler name (${style === 'http' ? 'the handler parameter' : '--handler'}) or add the file to the archive`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The extraction cache.

interface CacheEntry {
  refs: number;
  ready: Promise<string>;
}

const entries = new Map<string, CacheEntry>();
/** Deletions in progress, so a new open of the same archive waits instead of extracting into a dying dir. */
const removals = new Map<string, Promise<void>>();
const sweptRoots = new Set<string>();

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (err) {
    throw new MarError('INPUT_INVALID', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  }
  return hash.digest('hex');
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Live owner pids of a cache entry, deleting the markers of dead ones. */
async function liveOwners(entryDir: string): Promise<number[]> {
  const ownersDir = join(entryDir, 'owners');
  let names: string[];
  try {
    names = await readdir(ownersDir);
  } catch {
    return [];
  }
  const live: number[] = [];
  for (const n of names) {
    const pid = Number(n);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) live.push(pid);
    else await rm(join(ownersDir, n), { force: true });
  }
  return live;
}

let exitHookInstalled = false;

/** On exit without release() (process.exit, a fatal error), clean up what only we used, synchronously. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const entryDir of entries.keys()) {
      try {
        rmSync(join(entryDir, 'owners', String(process.pid)), { force: true });
        const others = readdirSync(join(entryDir, 'owners')).filter((n) => Number(n) !== process.pid && isAlive(Number(n)));
        if (others.length === 0) rmSync(entryDir, { recursive: true, force: true });
      } catch {
        /* best effort: a later sweep removes it */
      }
    }
  });
}

/** Removes entries no live process owns (left behind by crashed or killed processes). Once per root. */
async function sweepStale(root: string): Promise<void> {
  if (sweptRoots.has(root)) return;
  sweptRoots.add(root);
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return;
  }
  for (const n of names) {
    if (entries.has(join(root, n))) continue;
    const entryDir = join(root, n);
    if ((await liveOwners(entryDir)).length === 0) await rm(entryDir, { recursive: true, force: true }).catch(() => {});
  }
}

async function extractInto(archive: string, entryDir: string): Promise<string> {
  const modelDir = join(entryDir, 'model');
  const marker = join(entryDir, 'complete');
  await mkdir(join(entryDir, 'owners'), { recursive: true, mode: 0o700 });
  await writeFile(join(entryDir, 'owners', String(process.pid)), '');
  if ((await exists(marker)) && (await exists(modelDir))) return modelDir;
  // No marker: a previous extraction died half-way (or is running in another process; extraction is
  // atomic, so at worst both write the same bytes and one rename wins).
  await rm(modelDir, { recursive: true, force: true });
  const { detectArchiveKind } = await import('../archive/read.js');
  const { extractArchive } = await import('../archive/extract.js');
  const kind = await detectArchiveKind(archive);
  if (kind === 'dir') throw new MarError('INPUT_INVALID', `${archive} is a directory`);
  try {
    // Models legitimately hold zero-filled tensors that deflate ~1000:1, so the ratio check (aimed at
    // untrusted downloads) is set above deflate's maximum; the total-size and entry-count limits still apply.
    await extractArchive(archive, modelDir, { stripTgzRoot: true, limits: { maxRatio: 1100 } });
  } catch (err) {
    // Lost a race with another process extracting the same archive: its result is as good as ours.
    if (!((await exists(marker)) && (await exists(modelDir)))) throw err;
  }
  await writeFile(marker, new Date().toISOString() + '\n');
  return modelDir;
}

/**
 * Creates the cache root. The default one lives in the shared temp dir, so it must be ours alone: a directory
 * another user created (or can write to) could swap extracted handler code under us.
 */
async function ensureCacheRoot(root: string, isDefault: boolean): Promise<void> {
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new MarError('OUTPUT_FAILED', `cannot create the model cache ${root}: ${describeFsError(err)}; set MAR_CACHE_DIR`, { cause: err });
  }
  if (!isDefault || typeof process.getuid !== 'function') return;
  for (const dir of [dirname(root), root]) {
    const st = await lstat(dir);
    if (!st.isDirectory() || st.uid !== process.getuid() || (st.mode & 0o022) !== 0) {
      throw new MarError(
        'OUTPUT_FAILED',
        `the model cache ${dir} is not private to this user (a symlink, owned by uid ${st.uid}, or group/world-writable); remove it or set MAR_CACHE_DIR`,
      );
    }
  }
}

async function acquireExtraction(archive: string, cacheRoot: string | undefined): Promise<{ dir: string; release: () => Promise<void> }> {
  const root = resolve(cacheRoot ?? defaultCacheDir());
  await ensureCacheRoot(root, cacheRoot === undefined && !process.env['MAR_CACHE_DIR']);
  await sweepStale(root);
  installExitHook();
  const entryDir = join(root, await sha256File(archive));
  await removals.get(entryDir);
  let entry = entries.get(entryDir);
  if (!entry) {
    entry = { refs: 0, ready: extractInto(archive, entryDir) };
    entries.set(entryDir, entry);
  }
  entry.refs++;
  const current = entry;
  const release = async (): Promise<void> => {
    if (--current.refs > 0) return;
    if (entries.get(entryDir) === current) entries.delete(entryDir);
    const removal = (async () => {
      await rm(join(entryDir, 'owners', String(process.pid)), { force: true });
      // Another live process still uses it: leave it; the last one out (or a later sweep) removes it.
      if ((await liveOwners(entryDir)).length === 0) await rm(entryDir, { recursive: true, force: true });
    })();
    removals.set(entryDir, removal);
    try {
      await removal;
    } finally {
      if (removals.get(entryDir) === removal) removals.delete(entryDir);
    }
  };
  try {
    return { dir: await current.ready, release };
  } catch (err) {
    await release();
    throw err;
  }
}
