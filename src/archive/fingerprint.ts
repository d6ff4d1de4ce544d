/**
 * A cheap identity of an archive file, for the extraction cache: it never reads entry data, so it costs the same
 * for 1 KiB and 10 GiB. It hashes what stat says (size, mtime in nanoseconds, inode) and the bytes where the
 * format keeps a summary of the content:
 *
 * - zip: the central directory through the end record (every entry's name, sizes, offset and CRC-32), located
 *   from the end-of-central-directory record (zip64 included); a rewrite that changes any entry changes it;
 * - tgz: gzip has no directory, and finding the tar headers means inflating everything. So the first and last
 *   64 KiB of the compressed file: the head holds the gzip header and the first tar headers, the last 8 bytes are
 *   gzip's CRC-32 and length of the whole uncompressed tar (for the usual single-member file), a checksum of the
 *   content the format already stores.
 *
 * A zip whose end record cannot be found gets the tgz treatment; extraction then reports what is wrong with it.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { describeFsError, MarError } from '../errors.js';
import { detectArchiveKind } from './archive-kind.js';
import { SIG_EOCD, SIG_ZIP64_EOCD, SIG_ZIP64_LOCATOR } from './zip-format.js';

/** Bumped when what goes into the key changes, so old cache entries are never taken for new ones. */
const FINGERPRINT_VERSION = 'mar-fingerprint-1';
const EOCD_BYTES = 22;
const ZIP64_LOCATOR_BYTES = 20;
const ZIP64_EOCD_BYTES = 56;
const MAX_COMMENT = 0xffff;
const ENDS_BYTES = 64 << 10;
const READ_BYTES = 1 << 20;

export interface ArchiveFingerprint {
  /** 32 hex digits; equal keys mean the same archive as far as can be told without reading its data. */
  key: string;
  kind: 'zip' | 'tgz';
  size: number;
  /** Modification time in nanoseconds since the epoch (decimal). */
  mtimeNs: string;
  inode: string;
  /** Which content bytes went into the key. */
  content: 'central-directory' | 'file-ends';
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

async function hashRange(fh: FileHandle, hash: Hash, start: number, end: number): Promise<void> {
  for (let pos = start; pos < end; pos += READ_BYTES) hash.update(await readAt(fh, pos, Math.min(READ_BYTES, end - pos)));
}

/** Where the central directory starts (physically: its declared size before its end), or null if not a sound zip end. */
async function centralDirectoryStart(fh: FileHandle, size: number): Promise<number | null> {
  const tailStart = Math.max(0, size - (EOCD_BYTES + MAX_COMMENT + ZIP64_LOCATOR_BYTES));
  const tail = await readAt(fh, tailStart, size - tailStart);
  for (let i = tail.length - EOCD_BYTES; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== SIG_EOCD) continue;
    // the comment must reach exactly to the end of the file, as every reader requires
    if (i + EOCD_BYTES + tail.readUInt16LE(i + 20) !== tail.length) continue;
    let cdSize = tail.readUInt32LE(i + 12);
    let cdEnd = tailStart + i;
    const loc = i - ZIP64_LOCATOR_BYTES;
    if (loc >= 0 && tail.readUInt32LE(loc) === SIG_ZIP64_LOCATOR) {
      const zip64At = Number(tail.readBigUInt64LE(loc + 8));
      if (zip64At + ZIP64_EOCD_BYTES > size) return null;
      const rec = await readAt(fh, zip64At, ZIP64_EOCD_BYTES);
      if (rec.length < ZIP64_EOCD_BYTES || rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) return null;
      cdSize = Number(rec.readBigUInt64LE(40));
      cdEnd = zip64At;
    }
    const start = cdEnd - cdSize;
    return start >= 0 ? start : null;
  }
  return null;
}

/** Fingerprints a .mar / .zip / .tar.gz file (see the module comment); INPUT_NOT_FOUND if it cannot be read. */
export async function fingerprintArchive(path: string): Promise<ArchiveFingerprint> {
  const kind = await detectArchiveKind(path);
  if (kind === 'dir') throw new MarError('INPUT_INVALID', `${path} is a directory, not an archive file`);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  }
  try {
    const st = await fh.stat({ bigint: true });
    const size = Number(st.size);
    const fp = { kind, size, mtimeNs: st.mtimeNs.toString(), inode: st.ino.toString() };
    const hash = createHash('sha256').update(`${FINGERPRINT_VERSION}\0${kind}\0${fp.size}\0${fp.mtimeNs}\0${fp.inode}\0`);
    const cdStart = kind === 'zip' ? await centralDirectoryStart(fh, size) : null;
    let content: ArchiveFingerprint['content'];
    if (cdStart !== null) {
      content = 'central-directory';
      await hashRange(fh, hash.update('cd\0'), cdStart, size);
    } else {
      content = 'file-ends';
      hash.update('ends\0').update(await readAt(fh, 0, Math.min(ENDS_BYTES, size)));
      hash.update(await readAt(fh, Math.max(0, size - ENDS_BYTES), Math.min(ENDS_BYTES, size)));
    }
    return { key: hash.digest('hex').slice(0, 32), ...fp, content };
  } catch (err) {
    if (err instanceof MarError) throw err;
    throw new MarError('INPUT_INVALID', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  } finally {
    await fh.close();
  }
}
