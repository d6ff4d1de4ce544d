import chalk from 'chalk';
import type { Command } from 'commander';
import type { InspectReport } from '../../archive/inspect.js';
import { formatBytes } from '../../util/format.js';

const FORMAT_LABEL = { zip: 'zip (.mar)', tgz: 'gzipped tar (.tar.gz)', dir: 'directory (no-archive)' } as const;

function row(label: string, value: string): string {
  return `${chalk.dim(label.padEnd(11))}${value}\n`;
}

export function renderInspect(r: InspectReport, showFiles: boolean): string {
  let out = '';
  out += row('archive', r.path);
  out += row(
    'format',
    `${FORMAT_LABEL[r.format]}, ${formatBytes(r.archiveBytes)}${r.format === 'tgz' ? `, root dir ${r.tgzRoot ? `${r.tgzRoot}/` : chalk.yellow('none')}` : ''}`,
  );
  if (r.manifestKind === 'none') {
    out += row('manifest', chalk.yellow('none (MAR-INF/MANIFEST.json is missing)'));
    if (r.nestedManifest)
      out += row('', chalk.yellow(`- found ${r.nestedManifest}: the archive was made from the directory above the model`));
  } else {
    const where = r.manifestKind === 'legacy' ? 'MANIFEST.json (legacy 0.x, migrated)' : 'MAR-INF/MANIFEST.json';
    const state = r.manifestError
      ? chalk.red(` unreadable: ${r.manifestError}`)
      : r.schemaErrors.length
        ? chalk.yellow(` (${r.schemaErrors.length} schema problem${r.schemaErrors.length > 1 ? 's' : ''})`)
        : '';
    out += row('manifest', where + state);
    for (const e of r.schemaErrors) out += row('', chalk.yellow(`- ${e}`));
  }
  if (r.manifest) {
    out += row('model', `${chalk.bold(r.modelName ?? '(no name)')}${r.modelVersion ? `  version ${r.modelVersion}` : '  (no version)'}`);
    if (r.description) out += row('', r.description);
    out += row('runtime', r.runtime ?? '(none)');
    out += row('handler', r.handler ?? '(none)');
    const model = r.manifest.model as Record<string, unknown> | undefined;
    for (const [label, key] of [
      ['serialized', 'serializedFile'],
      ['model file', 'modelFile'],
      ['requires', 'requirementsFile'],
      ['config', 'configFile'],
    ] as const) {
      if (model && typeof model[key] === 'string') out += row(label, model[key] as string);
    }
    const created = [r.createdOn, r.archiverVersion ? `archiver ${r.archiverVersion}` : null].filter(Boolean).join(', ');
    if (created) out += row('created', created);
  }
  const dirs = r.entries.filter((e) => e.type === 'directory').length;
  const others = r.entryCount - r.fileCount - dirs;
  const extra = [dirs ? `${dirs} director${dirs === 1 ? 'y' : 'ies'}` : '', others ? chalk.yellow(`${others} link/special`) : '']
    .filter(Boolean)
    .join(', ');
  out += row('files', `${r.fileCount} file${r.fileCount === 1 ? '' : 's'}, ${formatBytes(r.totalSize)}${extra ? ` (+${extra})` : ''}`);
  const methods = Object.entries(r.methods)
    .sort()
    .map(([m, n]) => `${m} ${n}`)
    .join(', ');
  if (r.format === 'zip') {
    const pct = r.totalSize ? Math.round((r.compressedSize / r.totalSize) * 100) : 100;
    out += row('compressed', `${formatBytes(r.compressedSize)} (${pct}% of original)${methods ? `: ${methods}` : ''}`);
  } else if (r.format === 'tgz') {
    out += row('compressed', `${formatBytes(r.archiveBytes)} as a whole (gzip)`);
  }
  if (showFiles) {
    const files = r.entries;
    const sizeW = Math.max(4, ...files.map((e) => String(e.size).length));
    const compW = Math.max(10, ...files.map((e) => String(e.compressedSize).length));
    out += `\n${'method'.padEnd(10)}${'size'.padStart(sizeW)}  ${'compressed'.padStart(compW)}  path\n`;
    for (const e of files) {
      const method = e.type === 'file' ? e.method : e.type;
      // A tar member has no size of its own inside the gzip stream.
      const comp = e.type !== 'file' || r.format === 'tgz' ? '-' : String(e.compressedSize);
      out += `${method.padEnd(10)}${String(e.size).padStart(sizeW)}  ${comp.padStart(compW)}  ${e.path}\n`;
    }
  }
  return out;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show the manifest, handler, sizes and compression of a .mar, .tar.gz or model directory')
    .argument('<archive>', 'a .mar, .tar.gz or unpacked model directory')
    .option('--files', 'list every entry with its size, compressed size and method')
    .option('--json', 'print a JSON report for scripts')
    .action(async (archive: string, opts: { files?: boolean; json?: boolean }) => {
      // Loaded on use: the other commands (and --help) should not pay for the reader and the schema compiler.
      const { inspectArchive } = await import('../../archive/inspect.js');
      const report = await inspectArchive(archive);
      if (opts.json) {
        // The JSON always carries the entry list: scripts should not need a second flag to get it.
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        process.stdout.write(renderInspect(report, !!opts.files));
      }
    });
}
