/**
 * Model archives from URLs (allowed_urls, both dialects): an http(s) or file:// url is saved into the model
 * store under its file name, as TorchServe does, and removed again on unregister. The download has a size cap
 * (max_download_size) and a time limit (download_timeout), follows redirects only to urls allowed_urls matches,
 * and is written to a temp file beside the target that is linked into place only when complete, so the store
 * never holds half an archive and an existing file is never overwritten.
 */

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, open, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { isMarError, type MarError } from '../errors.js';
import type { UrlErrors } from './dialects/index.js';

export interface DownloadOptions {
  url: string;
  /** Where the archive is saved: the model store (or a temp dir without one). */
  dir: string;
  allowedUrls: readonly RegExp[];
  maxBytes: number;
  timeoutMs: number;
  errors: UrlErrors;
}

export interface DownloadedArchive {
  path: string;
  /** Deletes the saved archive (unregister). */
  remove(): Promise<void>;
}

const MAX_REDIRECTS = 5;

/** Whether `url` is one this module fetches (http, https, file). */
export function isDownloadUrl(url: string): boolean {
  return /^(https?|file):\/\//i.test(url);
}

/** Whether allowed_urls lets `url` in (every pattern matches the whole url). */
export function isAllowedUrl(url: string, allowed: readonly RegExp[]): boolean {
  return allowed.some((re) => re.test(url));
}

/** The url's file name as TorchServe takes it (the last path segment), made safe for a file name. */
function fileNameOf(url: URL): string {
  let name = basename(url.pathname);
  try {
    name = decodeURIComponent(name);
  } catch {
    // keep it encoded
  }
  name = name.replace(/[^\w.-]/g, '_');
  return name === '' || /^\.+$/.test(name) ? 'model.mar' : name;
}

/** Fails with the dialect's download error, plus why when it is ours to say (size, time, a redirect). */
function failed(o: DownloadOptions, status: number | null, why?: string, cause?: unknown): MarError {
  return o.errors.downloadFailed(o.url, status, why, cause);
}

/** Counts bytes and stops the copy past the cap. */
function sizeCap(o: DownloadOptions): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > o.maxBytes) done(failed(o, null, `larger than max_download_size=${o.maxBytes} bytes`));
      else done(null, chunk);
    },
  });
}

/** GET with redirects followed by hand: each hop must be http(s) and allowed. */
async function fetchAllowed(o: DownloadOptions, start: URL, signal: AbortSignal): Promise<Response> {
  let current = start;
  for (let hop = 0; ; hop++) {
    let res: Response;
    try {
      res = await fetch(current, { redirect: 'manual', signal });
    } catch (err) {
      throw failed(o, null, signal.aborted ? `no answer within download_timeout=${o.timeoutMs / 1000} s` : undefined, err);
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || location === null) return res;
    await res.body?.cancel().catch(() => {});
    let next: URL;
    try {
      next = new URL(location, current);
    } catch (err) {
      throw failed(o, res.status, `bad redirect location ${JSON.stringify(location)}`, err);
    }
    if (!/^https?:$/.test(next.protocol) || !isAllowedUrl(next.href, o.allowedUrls)) {
      throw failed(o, res.status, `redirected to ${next.href}, which allowed_urls does not match`);
    }
    if (hop + 1 >= MAX_REDIRECTS) throw failed(o, res.status, `more than ${MAX_REDIRECTS} redirects`);
    current = next;
  }
}

/** The body to save: an http(s) response (status 200) or a local file for file:// urls. */
async function openSource(o: DownloadOptions, parsed: URL, signal: AbortSignal): Promise<Readable> {
  if (parsed.protocol === 'file:') {
    let path: string;
    try {
      path = fileURLToPath(parsed);
    } catch {
      throw o.errors.malformed(o.url);
    }
    const st = await stat(path).catch((err: unknown) => {
      throw failed(o, null, 'no such file', err);
    });
    if (!st.isFile()) throw failed(o, null, 'not a file');
    if (st.size > o.maxBytes) throw failed(o, null, `larger than max_download_size=${o.maxBytes} bytes`);
    return createReadStream(path, { signal });
  }
  const res = await fetchAllowed(o, parsed, signal);
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel().catch(() => {});
    throw failed(o, res.status);
  }
  const length = Number(res.headers.get('content-length'));
  if (length > o.maxBytes) {
    await res.body.cancel().catch(() => {});
    throw failed(o, null, `larger than max_download_size=${o.maxBytes} bytes`);
  }
  return Readable.fromWeb(res.body as WebReadableStream<Uint8Array>, { signal });
}

/**
 * Saves the archive at `o.url` (already checked against allowed_urls) into `o.dir`. Errors are the dialect's:
 * a malformed url, a failed download, or a file of that name already in the store.
 */
export async function downloadArchive(o: DownloadOptions): Promise<DownloadedArchive> {
  let parsed: URL;
  try {
    parsed = new URL(o.url);
  } catch {
    throw o.errors.malformed(o.url);
  }
  const fileName = fileNameOf(parsed);
  const target = join(o.dir, fileName);
  // checked before anything is fetched, as TorchServe: re-registering a url whose archive is there needs no network
  if (await stat(target).catch(() => null)) throw o.errors.exists(fileName);
  const tmp = join(o.dir, `.${fileName}.${randomBytes(6).toString('hex')}.part`);
  const signal = AbortSignal.timeout(o.timeoutMs);
  try {
    const source = await openSource(o, parsed, signal);
    // the file is created before the copy starts: a stream that opened it itself could do so after a failed copy
    // had already returned and the unlink below had run, leaving the .part file behind
    const file = await open(tmp, 'wx').catch((err: unknown) => {
      source.destroy();
      throw err;
    });
    await pipeline(source, sizeCap(o), file.createWriteStream());
    try {
      // link, not rename: it refuses to replace a file another register saved meanwhile
      await link(tmp, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw o.errors.exists(fileName);
      throw err;
    }
  } catch (err) {
    if (isMarError(err)) throw err;
    throw failed(o, null, signal.aborted ? `not complete within download_timeout=${o.timeoutMs / 1000} s` : undefined, err);
  } finally {
    await unlink(tmp).catch(() => {});
  }
  return { path: target, remove: () => unlink(target).catch(() => {}) };
}
