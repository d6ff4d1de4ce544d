/** Directory source: an unpacked model read in place, listed by one sorted lstat walk (symlinks are not followed). */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { describeFsError, MarError } from '../../errors.js';
import { checkEntryPath } from '../safe-path.js';
import type { ArchiveEntryInfo, ArchiveSource, EntryType } from './source.js';

async function walkDir(root: string): Promise<ArchiveEntryInfo[]> {
  const out: ArchiveEntryInfo[] = [];
  const visit = async (rel: string): Promise<void> => {
    const names = (await readdir(rel ? join(root, rel) : root)).sort();
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      const abs = join(root, relPath);
      const st = await lstat(abs);
      const type: EntryType = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'other';
      const info: ArchiveEntryInfo = {
        index: 0,
        path: type === 'directory' ? `${relPath}/` : relPath,
        rawPath: type === 'directory' ? `${relPath}/` : relPath,
        type,
        isDirectory: type === 'directory',
        isSymlink: type === 'symlink',
        size: type === 'file' ? st.size : 0,
        compressedSize: type === 'file' ? st.size : 0,
        method: 'file',
        mode: st.mode,
        mtime: st.mtime,
        nameValidUtf8: true,
      };
      if (type === 'symlink') info.linkTarget = await readlink(abs);
      out.push(info);
      if (type === 'directory') await visit(relPath);
    }
  };
  try {
    await visit('');
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read directory ${root}: ${describeFsError(err)}`, { cause: err });
  }
  out.forEach((e, i) => {
    e.index = i;
  });
  return out;
}

class DirSource implements ArchiveSource {
  readonly entries: ArchiveEntryInfo[];
  readonly tgzRoot = null;
  readonly #root: string;

  constructor(root: string, entries: ArchiveEntryInfo[]) {
    this.#root = root;
    this.entries = entries;
  }

  cached(): undefined {
    return undefined;
  }

  async openRaw(entry: ArchiveEntryInfo): Promise<Readable> {
    return createReadStream(join(this.#root, ...checkEntryPath(entry.rawPath).segments));
  }

  close(): void {}
}

/** Lists a model directory; an unreadable one is INPUT_NOT_FOUND. */
export async function openDirSource(root: string): Promise<ArchiveSource> {
  return new DirSource(root, await walkDir(root));
}
