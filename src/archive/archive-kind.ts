/**
 * Which of the three shapes a path is (zip, gzip tar, directory), from its magic bytes: on its own so that what only
 * asks this (the cache's fingerprint, an early peek before a worker's spawn) does not load the archive readers.
 */
import { open as openFile, stat } from 'node:fs/promises';
import { describeFsError, MarError } from '../errors.js';
import type { ArchiveKind } from './sources/source.js';

const ZIP_MAGIC = [Buffer.from('PK\x03\x04', 'latin1'), Buffer.from('PK\x05\x06', 'latin1'), Buffer.from('PK\x07\x08', 'latin1')];

/** Detects the archive format from magic bytes (not the extension); a directory is an unpacked archive. */
export async function detectArchiveKind(path: string): Promise<ArchiveKind> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read ${path}: ${describeFsError(err)}; check the path`, { cause: err });
  }
  if (st.isDirectory()) return 'dir';
  if (!st.isFile())
    throw new MarError('ARCHIVE_UNSUPPORTED', `${path} is not a regular file or directory; pass a .mar, .tar.gz or model directory`);
  const head = Buffer.alloc(4);
  let fh;
  try {
    fh = await openFile(path, 'r');
    await fh.read(head, 0, 4, 0);
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  } finally {
    await fh?.close();
  }
  if (st.size === 0) throw new MarError('ARCHIVE_CORRUPT', `${path} is empty; rebuild or re-download the archive`);
  if (ZIP_MAGIC.some((m) => head.equals(m))) return 'zip';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'tgz';
  throw new MarError(
    'ARCHIVE_UNSUPPORTED',
    `${path} is neither a zip (.mar) nor a gzipped tar (.tar.gz) (starts with 0x${head.toString('hex')}); pass a .mar, .tar.gz or model directory`,
  );
}
