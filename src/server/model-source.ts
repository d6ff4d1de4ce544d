/**
 * Where a register call's `url` points: a file or directory in the model store, a url allowed_urls lets in
 * (saved into the store by model-download.ts), or an absolute path outside the store that allowed_urls lets in
 * as a file:// url. The rules and texts are MMS's or TorchServe's (dialects/); the checks are the same.
 */

import { mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MarError } from '../errors.js';
import type { ServerConfig } from './config.js';
import type { Dialect } from './dialects/index.js';
import { downloadArchive, isAllowedUrl, isDownloadUrl } from './model-download.js';

export interface ModelSource {
  /** The archive or directory to open. */
  path: string;
  /** Called once the model is opened (or failed to open): removes a temp download. */
  afterOpen(): Promise<void>;
  /** Removes the archive this register saved into the store (on unregister, or when the register fails); null if none. */
  removeSaved: (() => Promise<void>) | null;
}

const nothing = async (): Promise<void> => {};

/** Resolves `url` for a register call (MMS ModelArchive#downloadModel, TorchServe's ModelArchive#downloadModel). */
export async function resolveModelSource(url: string, config: ServerConfig, dialect: Dialect): Promise<ModelSource> {
  const errors = dialect.urlErrors;
  if (url === '' && errors.empty) throw errors.empty();
  if (isDownloadUrl(url)) {
    if (!isAllowedUrl(url, config.allowedUrls)) throw new MarError('MODEL_NOT_FOUND', `Given URL ${url} does not match any allowed URL(s)`);
    const limits = { allowedUrls: config.allowedUrls, maxBytes: config.maxDownloadBytes, timeoutMs: config.downloadTimeoutSeconds * 1000 };
    if (config.modelStore !== null) {
      const saved = await downloadArchive({ url, dir: config.modelStore, errors, ...limits });
      return { path: saved.path, afterOpen: nothing, removeSaved: saved.remove };
    }
    // no model store: a temp dir, gone once the archive is opened (the extraction cache keeps the model)
    const dir = await mkdtemp(join(tmpdir(), 'mar-download-'));
    const removeDir = (): Promise<void> => rm(dir, { recursive: true, force: true });
    try {
      const saved = await downloadArchive({ url, dir, errors, ...limits });
      return { path: saved.path, afterOpen: removeDir, removeSaved: null };
    } catch (err) {
      await removeDir();
      throw err;
    }
  }
  if (url.includes('..')) throw new MarError('MODEL_NOT_FOUND', `Relative path is not allowed in url: ${url}`);
  // a path outside the store only when allowed_urls lets its file:// url in
  if (isAbsolute(url) && isAllowedUrl(pathToFileURL(url).href, config.allowedUrls)) {
    if (!(await stat(url).catch(() => null))) throw errors.notInStore(url);
    return { path: url, afterOpen: nothing, removeSaved: null };
  }
  const store = config.modelStore;
  if (store === null) throw new MarError('MODEL_NOT_FOUND', 'Model store has not been configured.');
  const candidate = join(store, url);
  let real: string;
  let realStore: string;
  try {
    [real, realStore] = await Promise.all([realpath(candidate), realpath(store)]);
    await stat(real);
  } catch {
    throw errors.notInStore(url);
  }
  // symlinks must not lead out of the store, and the store itself is not a model
  if (!real.startsWith(realStore + sep)) {
    if (real === realStore) throw errors.notInStore(url);
    throw new MarError('MODEL_NOT_FOUND', `Relative path is not allowed in url: ${url}`);
  }
  return { path: real, afterOpen: nothing, removeSaved: null };
}
