import { type Command, InvalidArgumentError } from 'commander';
import type { ExtractLimits } from '../../archive/extract.js';
import { formatBytes, parseByteSize } from '../../util/format.js';

/** "512M", "10G", "1.5GiB", "123456" -> bytes (binary units). */
export function parseSize(text: string): number {
  const bytes = parseByteSize(text);
  if (bytes === null) throw new InvalidArgumentError(`expected a size like 512M, 10G or a number of bytes, got ${JSON.stringify(text)}`);
  if (bytes <= 0) throw new InvalidArgumentError('must be greater than 0');
  return bytes;
}

function positive(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got ${JSON.stringify(text)}`);
  return n;
}

function positiveInt(text: string): number {
  const n = positive(text);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected a whole number, got ${JSON.stringify(text)}`);
  return n;
}

export const HELP_DEFAULTS: Readonly<ExtractLimits> = { maxTotalBytes: 64 * 1024 ** 3, maxEntries: 100_000, maxRatio: 200 };

interface ExtractCliOptions {
  output: string;
  force?: boolean;
  maxSize?: number;
  maxRatio?: number;
  maxEntries?: number;
  keepRoot?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function registerExtract(program: Command): void {
  // Mirrors DEFAULT_EXTRACT_LIMITS for --help without loading the extractor (a test keeps them equal).
  const d = HELP_DEFAULTS;
  program
    .command('extract')
    .description('safely unpack a .mar, .tar.gz or model directory into a new directory (atomic; refuses links and escaping paths)')
    .argument('<archive>', 'a .mar, .tar.gz or unpacked model directory')
    .requiredOption('-o, --output <dir>', 'directory to create (must not exist or be empty, unless --force)')
    .option('-f, --force', 'replace the output directory if it exists')
    .option('--max-size <size>', `largest total uncompressed size to accept (default ${formatBytes(d.maxTotalBytes)})`, parseSize)
    .option('--max-ratio <n>', `largest inflated/archive size ratio to accept (default ${d.maxRatio})`, positive)
    .option('--max-entries <n>', `largest number of entries to accept (default ${d.maxEntries})`, positiveInt)
    .option('--keep-root', 'tgz: keep the top-level <model-name>/ directory instead of dropping it as TorchServe does')
    .option('--json', 'print a JSON summary ({dir, entryCount, bytes})')
    .option('-q, --quiet', 'print nothing on success')
    .action(async (archive: string, opts: ExtractCliOptions) => {
      const limits: Partial<ExtractLimits> = {};
      if (opts.maxSize !== undefined) limits.maxTotalBytes = opts.maxSize;
      if (opts.maxRatio !== undefined) limits.maxRatio = opts.maxRatio;
      if (opts.maxEntries !== undefined) limits.maxEntries = opts.maxEntries;
      const { extractArchive } = await import('../../archive/extract.js');
      const copier = (await import('../../runtime/extraction-copier.js')).extractionCopier();
      let result: Awaited<ReturnType<typeof extractArchive>>;
      try {
        result = await extractArchive(archive, opts.output, { limits, force: !!opts.force, stripTgzRoot: !opts.keepRoot, copier });
      } finally {
        copier?.close();
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else if (!opts.quiet) {
        process.stdout.write(
          `extracted ${result.entryCount} file${result.entryCount === 1 ? '' : 's'} (${formatBytes(result.bytes)}) to ${result.dir}\n`,
        );
      }
    });
}
