import type { Stats } from 'node:fs';
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';
import { DIGESTS_PATH, MANIFEST_PATH } from '../manifest/manifest.js';
import { IgnoreRules } from './ignore-rules.js';

/** One file that goes into the archive. */
export interface SourceEntry {
  /** Path inside the archive: relative, `/`-separated, never `..`. */
  archivePath: string;
  /** Path on disk (as reached, possibly through symlinks). */
  sourcePath: string;
  /** Canonical path on disk, so the same file reached twice is not a collision. */
  realPath: string;
  size: number;
  /** 0o755 if the source has any execute bit, else 0o644: fixed modes keep archives reproducible. */
  mode: number;
  mtimeMs: number;
  /** How the user named it, for messages (`--model-path ./m`, `--extra-files x`). */
  origin: string;
}

export interface WalkOptions {
  /** Prefix for archive paths (no trailing slash); '' for the root. */
  prefix?: string;
  /** Exclusion rules matched against the path relative to the walked root. */
  ignore?: IgnoreRules;
  /** Absolute paths never to include (our own output and temp files). */
  skipPaths?: ReadonlySet<string>;
  /** Label for messages, e.g. `--model-path`. */
  origin: string;
}

/** Directory names MMS never archives (hidden dirs are skipped too). */
const SKIPPED_DIRS = new Set(['__pycache__', '__MACOSX']);
/** Files MMS never archives, plus ours: the ignore file itself. */
const SKIPPED_FILE = /(\.pyc|\.mar)$/;
const SKIPPED_NAMES = new Set(['.DS_Store']);
/** Files we always write ourselves; an input copy is never taken. */
const RESERVED_PATHS = new Set([MANIFEST_PATH, DIGESTS_PATH]);

export const IGNORE_FILE = '.marignore';

export function fileMode(st: Stats): number {
  return st.mode & 0o111 ? 0o755 : 0o644;
}

/** Whether MMS's rules (and ours) skip a file name found in a directory walk. */
export function isSkippedFileName(name: string): boolean {
  return SKIPPED_FILE.test(name) || SKIPPED_NAMES.has(name);
}

export function isSkippedDirName(name: string): boolean {
  return name.startsWith('.') || SKIPPED_DIRS.has(name);
}

export function isReservedPath(archivePath: string): boolean {
  return RESERVED_PATHS.has(archivePath);
}

/** Follows a symlink (or not) and turns the failure modes into one-line errors. */
async function statFollowing(path: string, shown: string): Promise<Stats> {
  try {
    return await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const l = await lstat(path).catch(() => undefined);
      if (l?.isSymbolicLink()) {
        const target = await readlink(path).catch(() => '?');
        throw new MarError('SYMLINK_DANGLING', `${shown} is a symlink to ${target}, which does not exist; fix or remove the link`, {
          cause: err,
        });
      }
      throw new MarError('INPUT_NOT_FOUND', `${shown}: ${describeFsError(err)}`, { cause: err });
    }
    if (code === 'ELOOP') {
      throw new MarError('SYMLINK_CYCLE', `${shown} is a symlink loop (it resolves to itself); fix or remove the link`, { cause: err });
    }
    throw new MarError('INPUT_INVALID', `cannot read ${shown}: ${describeFsError(err)}`, { cause: err });
  }
}

/**
 * Collects every file under `root` that the MMS inclusion rules, the ignore rules and our reserved paths let
 * through. Symlinks to files and dirs are followed; a link back into one of its own ancestors is a cycle error
 * naming the loop. The result is unsorted (the caller sorts all inputs together).
 */
export async function walkDirectory(root: string, options: WalkOptions): Promise<SourceEntry[]> {
  const prefix = options.prefix ?? '';
  const ignore = options.ignore ?? new IgnoreRules();
  const skip = options.skipPaths ?? new Set<string>();
  const out: SourceEntry[] = [];
  const rootAbs = resolve(root);
  const rootStat = await statFollowing(rootAbs, `${options.origin} ${root}`);
  if (!rootStat.isDirectory()) throw new MarError('INPUT_INVALID', `${options.origin} ${root} is not a directory`);

  // Identity of each directory on the current path from the root, for cycle detection.
  const chain = new Map<string, string>();

  const visit = async (dirAbs: string, rel: string, st: Stats): Promise<void> => {
    const id = `${st.dev}:${st.ino}`;
    const seenAt = chain.get(id);
    if (seenAt !== undefined) {
      throw new MarError(
        'SYMLINK_CYCLE',
        `symlink cycle: ${join(root, rel)} leads back to ${seenAt === '' ? root : join(root, seenAt)}; remove the link or exclude it`,
      );
    }
    chain.set(id, rel);
    try {
      let names: string[];
      try {
        names = (await readdir(dirAbs)).sort();
      } catch (err) {
        throw new MarError('INPUT_INVALID', `cannot list ${join(root, rel)}: ${describeFsError(err)}`, { cause: err });
      }
      for (const name of names) {
        const childAbs = join(dirAbs, name);
        const childRel = rel === '' ? name : `${rel}/${name}`;
        if (skip.has(childAbs)) continue;
        const shown = join(root, childRel);
        if (name.includes('\uFFFD')) {
          // readdir decoded invalid UTF-8 bytes: the path cannot even be stat'ed by this name, and Java readers
          // reject non-UTF-8 zip names. Excluded is fine; anything else is an error.
          if (ignore.isIgnored(childRel, false) || ignore.isIgnored(childRel, true)) continue;
          throw new MarError(
            'INPUT_INVALID',
            `${JSON.stringify(shown)} has a name that is not valid UTF-8; rename it or exclude it with --exclude`,
          );
        }
        let cst: Stats;
        try {
          cst = await statFollowing(childAbs, shown);
        } catch (err) {
          // A broken link (dangling, looping) the user excluded, or one MMS would skip, is not our business.
          if (ignore.isIgnored(childRel, false) || ignore.isIgnored(childRel, true) || isSkippedFileName(name)) continue;
          throw err;
        }
        if (cst.isDirectory()) {
          if (isSkippedDirName(name)) continue;
          if (ignore.isIgnored(childRel, true)) continue;
          await visit(childAbs, childRel, cst);
        } else if (cst.isFile()) {
          if (isSkippedFileName(name)) continue;
          if (rel === '' && name === IGNORE_FILE) continue;
          if (ignore.isIgnored(childRel, false)) continue;
          const archivePath = prefix ? `${prefix}/${childRel}` : childRel;
          if (isReservedPath(archivePath)) continue;
          out.push({
            archivePath,
            sourcePath: childAbs,
            realPath: await realpath(childAbs).catch(() => childAbs),
            size: cst.size,
            mode: fileMode(cst),
            mtimeMs: cst.mtimeMs,
            origin: `${options.origin} ${root}`,
          });
        } else {
          if (ignore.isIgnored(childRel, false)) continue;
          throw new MarError(
            'INPUT_INVALID',
            `${shown} is not a regular file (a FIFO, socket or device); remove it or exclude it with --exclude`,
          );
        }
      }
    } finally {
      chain.delete(id);
    }
  };

  await visit(rootAbs, '', rootStat);
  return out;
}

/** A single named file (a TorchServe-style flag): must exist and be a regular file after following links. */
export async function statInputFile(path: string, flag: string): Promise<{ st: Stats; realPath: string; absPath: string }> {
  const absPath = resolve(path);
  const st = await statFollowing(absPath, `${flag} ${path}`);
  if (st.isDirectory()) {
    throw new MarError('INPUT_INVALID', `${flag} ${path} is a directory; pass a file (use --extra-files or --model-path for directories)`);
  }
  if (!st.isFile()) throw new MarError('INPUT_INVALID', `${flag} ${path} is not a regular file`);
  return { st, realPath: await realpath(absPath).catch(() => absPath), absPath };
}
