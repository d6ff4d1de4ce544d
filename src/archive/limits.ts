/**
 * The one set of limits every reader of an archive applies, whoever asked: inspect, verify, extract, the model
 * loader behind `predict` and register. A hostile archive is small on disk and huge once read (a manifest of
 * hundreds of MB, millions of entries, a bomb); these limits stop it while it is being read, long before it
 * fills memory or a disk. The defaults are far above any real model; the server's config keys and the extract
 * command's flags raise them.
 */
import { MarError } from '../errors.js';

export interface ArchiveLimits {
  /** Largest manifest (and model-config YAML) read into memory, in bytes. Default 4 MiB: real ones are a few KB. */
  maxManifestBytes: number;
  /** Most entries (files, directories, links). Default 100,000. */
  maxEntries: number;
  /** Most bytes an archive may inflate to, counted while inflating, not taken from headers. Default 64 GiB. */
  maxTotalBytes: number;
  /**
   * Most inflated bytes per byte of archive file (the whole archive, not per entry), checked once more than
   * RATIO_GRACE_BYTES have been inflated so tiny archives never trip it; never applied to directories.
   * Default 1100: just above what deflate can reach (1032:1), so a model of zero-filled tensors loads, and only
   * archives that reuse compressed data (overlapping entries, the classic bombs) are refused.
   */
  maxRatio: number;
}

/** The limits of every reader and loader unless the caller (config keys, extract flags) raises them. */
export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxManifestBytes: 4 << 20,
  maxEntries: 100_000,
  maxTotalBytes: 64 * 1024 ** 3,
  maxRatio: 1100,
});

/**
 * `model-archiver extract` (and extractArchive) is usually pointed at an archive from somewhere else and keeps
 * its documented, stricter ratio: real weights barely compress, so 200 is far above them, while a bomb is
 * refused after a few MB instead of a GB.
 */
export const EXTRACT_COMMAND_RATIO = 200;

/** The ratio check starts after this many inflated bytes: a tiny archive of text compresses well and is no bomb. */
export const RATIO_GRACE_BYTES = 1 << 20;

/**
 * How the user who hit a limit raises it: the extract command's flags, the server's config keys, or (a command
 * with no flags for it, such as `predict`) extracting the archive with those flags first.
 */
export type LimitHint = 'flags' | 'config' | 'extract';

// The commands have no flag for the manifest limit: a manifest over 4 MiB is broken, not big.
const RAISE: Record<keyof ArchiveLimits, { flag: string | null; key: string }> = {
  maxManifestBytes: { flag: null, key: 'max_manifest_size' },
  maxEntries: { flag: '--max-entries', key: 'max_archive_entries' },
  maxTotalBytes: { flag: '--max-size', key: 'max_archive_size' },
  maxRatio: { flag: '--max-ratio', key: 'max_archive_ratio' },
};

/** "raise the limit with --max-ratio" / "raise max_archive_ratio in config.properties" (null: no flag for it). */
export function raiseHint(limit: keyof ArchiveLimits, hint: LimitHint): string | null {
  const r = RAISE[limit];
  if (hint === 'config') return `raise ${r.key} in config.properties`;
  if (r.flag === null) return null;
  return hint === 'flags' ? `raise the limit with ${r.flag}` : `extract it with model-archiver extract ${r.flag} <n> and run the directory`;
}

/** The config.properties key that sets each limit (server.md documents them). */
export const LIMIT_CONFIG_KEYS: Readonly<Record<keyof ArchiveLimits, string>> = Object.freeze({
  maxManifestBytes: RAISE.maxManifestBytes.key,
  maxEntries: RAISE.maxEntries.key,
  maxTotalBytes: RAISE.maxTotalBytes.key,
  maxRatio: RAISE.maxRatio.key,
});

/** Defaults overlaid with the fields given (undefined fields keep their default). */
export function resolveArchiveLimits(partial: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const out = { ...DEFAULT_ARCHIVE_LIMITS };
  for (const k of Object.keys(RAISE) as (keyof ArchiveLimits)[]) {
    const v = partial[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function limitError(archive: string, what: string, limit: keyof ArchiveLimits, hint: LimitHint): MarError {
  const raise = raiseHint(limit, hint);
  return new MarError('ARCHIVE_LIMIT', `${archive} ${what}${raise ? `; if you trust it, ${raise}` : ''}`, { details: { limit } });
}

/** Refuses an archive that lists more entries than allowed (checked before they are all held in memory). */
export function checkEntryCount(archive: string, count: number, limits: Pick<ArchiveLimits, 'maxEntries'>, hint: LimitHint): void {
  if (count > limits.maxEntries) throw limitError(archive, `has more than ${limits.maxEntries} entries`, 'maxEntries', hint);
}

/** Refuses a manifest or config file larger than allowed, before it is read. */
export function checkManifestSize(what: string, bytes: number, limits: Pick<ArchiveLimits, 'maxManifestBytes'>, hint: LimitHint): void {
  if (bytes > limits.maxManifestBytes) {
    const raise = raiseHint('maxManifestBytes', hint);
    throw new MarError(
      'ARCHIVE_LIMIT',
      `${what} is ${bytes} bytes, more than the ${limits.maxManifestBytes} read into memory; a manifest is a few KB: rebuild the archive${raise ? ` (or ${raise})` : ''}`,
      { details: { limit: 'maxManifestBytes' } },
    );
  }
}

/** Refuses an archive whose recorded sizes already add up to more than allowed, before anything is inflated. */
export function checkDeclaredSize(archive: string, declared: number, limits: Pick<ArchiveLimits, 'maxTotalBytes'>, hint: LimitHint): void {
  if (declared > limits.maxTotalBytes) {
    throw limitError(
      archive,
      `declares ${declared} bytes of content, more than the ${limits.maxTotalBytes} allowed`,
      'maxTotalBytes',
      hint,
    );
  }
}

/** Counts entries and inflated bytes as they are read; throws ARCHIVE_LIMIT the moment a limit is exceeded. */
export class LimitMeter {
  readonly #limits: Pick<ArchiveLimits, 'maxEntries' | 'maxTotalBytes' | 'maxRatio'>;
  readonly #archiveBytes: number;
  readonly #archive: string;
  readonly #hint: LimitHint;
  bytes = 0;
  entries = 0;

  /** `archiveBytes`: the archive file's size (Infinity for a directory: no ratio). */
  constructor(
    archive: string,
    archiveBytes: number,
    limits: Pick<ArchiveLimits, 'maxEntries' | 'maxTotalBytes' | 'maxRatio'>,
    hint: LimitHint,
  ) {
    this.#archive = archive;
    this.#archiveBytes = Math.max(1, archiveBytes);
    this.#limits = limits;
    this.#hint = hint;
  }

  addEntry(count = 1): void {
    this.entries += count;
    checkEntryCount(this.#archive, this.entries, this.#limits, this.#hint);
  }

  addBytes(n: number): void {
    this.bytes += n;
    if (this.bytes > this.#limits.maxTotalBytes) {
      throw limitError(this.#archive, `inflates to more than ${this.#limits.maxTotalBytes} bytes`, 'maxTotalBytes', this.#hint);
    }
    if (this.bytes > RATIO_GRACE_BYTES && this.bytes / this.#archiveBytes > this.#limits.maxRatio) {
      throw limitError(this.#archive, `inflates more than ${this.#limits.maxRatio} times its size (a zip bomb?)`, 'maxRatio', this.#hint);
    }
  }
}
