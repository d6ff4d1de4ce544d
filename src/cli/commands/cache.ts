import type { Command } from 'commander';
import type { CacheEntryInfo, CacheListing } from '../../runtime/extraction-cache.js';
import { formatBytes } from '../../util/format.js';

interface CacheCliOptions {
  cacheDir?: string;
  json?: boolean;
}

function settings(opts: CacheCliOptions): { dir?: string } {
  return opts.cacheDir !== undefined ? { dir: opts.cacheDir } : {};
}

function capText(l: CacheListing): string {
  const bytes = Number.isFinite(l.capBytes) ? formatBytes(l.capBytes) : 'unlimited';
  return 'fraction' in l.cap ? `${bytes}: ${Math.round(l.cap.fraction * 100)}% of the disk space it could use` : bytes;
}

function when(d: Date): string {
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

function entryJson(e: CacheEntryInfo): Record<string, unknown> {
  return {
    key: e.key,
    archive: e.record?.archive ?? null,
    bytes: e.bytes,
    files: e.record?.files ?? null,
    created: e.record?.created ?? null,
    lastUsed: e.lastUsed.toISOString(),
    users: e.users,
    broken: e.record === null,
  };
}

/** Columns padded to their widest cell; the last one is left ragged. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function printListing(l: CacheListing): void {
  const count = `${l.entries.length} entr${l.entries.length === 1 ? 'y' : 'ies'}`;
  process.stdout.write(`${l.root}: ${count}, ${formatBytes(l.totalBytes)} (cap ${capText(l)})\n`);
  if (l.entries.length === 0) return;
  const rows = [['KEY', 'SIZE', 'FILES', 'LAST USED (UTC)', 'USERS', 'ARCHIVE']];
  for (const e of l.entries) {
    rows.push([
      e.key.slice(0, 12),
      formatBytes(e.bytes),
      String(e.record?.files ?? '-'),
      when(e.lastUsed),
      String(e.users),
      e.record?.archive ?? '(broken entry: removed by the next clear or eviction)',
    ]);
  }
  process.stdout.write(`${table(rows)}\n`);
}

export function registerCache(program: Command): void {
  const cache = program
    .command('cache')
    .description('show or clear the cache of extracted model archives (shared by predict and the server)');
  const dirOption = '--cache-dir <dir>';
  const dirHelp = 'the cache directory (default: $MAR_CACHE_DIR, else the platform cache dir, e.g. ~/.cache/mar-tools/models)';
  cache
    .command('list')
    .description('list the cached extractions, most recently used first')
    .option(dirOption, dirHelp)
    .option('--json', 'print {root, capBytes, totalBytes, entries: [{key, archive, bytes, files, created, lastUsed, users, broken}]}')
    .action(async (opts: CacheCliOptions) => {
      const { listExtractionCache } = await import('../../runtime/extraction-cache.js');
      const l = await listExtractionCache(settings(opts));
      if (opts.json) {
        const out = {
          root: l.root,
          capBytes: Number.isFinite(l.capBytes) ? l.capBytes : null,
          totalBytes: l.totalBytes,
          entries: l.entries.map(entryJson),
        };
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      } else printListing(l);
    });
  cache
    .command('clear')
    .description('remove every cached extraction no running process uses')
    .option(dirOption, dirHelp)
    .option('--json', 'print {root, removed: [...], kept: [...]}')
    .action(async (opts: CacheCliOptions) => {
      const { clearExtractionCache } = await import('../../runtime/extraction-cache.js');
      const r = await clearExtractionCache(settings(opts));
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ root: r.root, removed: r.removed.map(entryJson), kept: r.kept.map(entryJson) }, null, 2)}\n`,
        );
        return;
      }
      const freed = formatBytes(r.removed.reduce((n, e) => n + e.bytes, 0));
      const kept = r.kept.length > 0 ? `; kept ${r.kept.length} in use by a running process` : '';
      process.stdout.write(`removed ${r.removed.length} entr${r.removed.length === 1 ? 'y' : 'ies'} (${freed}) from ${r.root}${kept}\n`);
    });
}
