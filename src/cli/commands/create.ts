import { type Command, Option } from 'commander';
import { ARCHIVE_FORMATS, type ArchiveFormat } from '../../archive/formats.js';
import type { CreateArchiveOptions, CreateResult } from '../../archive/pack.js';
import { formatBytes, formatDuration, PROGRESS_MIN_BYTES, ProgressBar } from '../../archive/progress.js';
import { MarError } from '../../errors.js';
import { CREATE_RUNTIMES } from '../../handler/runtimes.js';
import { isDebug, printError } from '../run.js';

interface CreateFlags {
  modelName: string;
  modelPath?: string;
  handler: string;
  runtime: string;
  exportPath?: string;
  archiveFormat: ArchiveFormat;
  force?: boolean;
  serializedFile?: string;
  modelFile?: string;
  extraFiles?: string[];
  requirementsFile?: string;
  configFile?: string;
  version?: string;
  exclude?: string[];
  description?: string;
  json?: boolean;
  quiet?: boolean;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Adds the create flags (MMS and TorchServe spellings) to a command. */
function addCreateOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--model-name <name>', 'model name: letters, digits, _ - . (also the output file name)')
    .option('--model-path <dir>', 'directory archived recursively (MMS)')
    .requiredOption('--handler <handler>', 'handler: module[.py][:function], a handler file path, or a TorchServe built-in name')
    .addOption(new Option('--runtime <runtime>', 'runtime the model runs on').choices([...CREATE_RUNTIMES]).default('python'))
    .option('--export-path <dir>', 'output directory (default: current directory; created if missing)')
    .addOption(
      new Option(
        '--archive-format <format>',
        'default: .mar, deflating only what compresses; zip-store: .mar, all stored; tgz: .tar.gz; no-archive: a directory',
      )
        .choices([...ARCHIVE_FORMATS])
        .default('default'),
    )
    .option('-f, --force', 'replace an existing output')
    .option('--serialized-file <file>', 'weights file, added at the archive root (TorchServe)')
    .option('--model-file <file>', 'model definition file, added at the root (TorchServe)')
    .option(
      '--extra-files <list>',
      "comma list of files/dirs (repeatable); files go to the root, a directory's contents go to the root",
      collect,
    )
    .option('-r, --requirements-file <file>', 'requirements.txt, added at the root')
    .option('-c, --config-file <file>', 'model-config YAML (checked), added at the root')
    .option('-v, --version <version>', 'model version written to the manifest')
    .option('--exclude <glob>', 'exclude paths matching a gitignore-style glob (repeatable); see also .marignore', collect)
    .option('--description <text>', 'model description written to the manifest')
    .option('--json', 'print one JSON object describing the archive on stdout')
    .option('-q, --quiet', 'print nothing on success');
}

function summary(r: CreateResult, cwd: string): string {
  const shown = r.path.startsWith(`${cwd}/`) ? r.path.slice(cwd.length + 1) : r.path;
  const methods = r.format === 'default' || r.format === 'zip-store' ? `, ${r.methods.stored} stored / ${r.methods.deflated} deflated` : '';
  return `created ${shown} (${r.entryCount} entries, ${formatBytes(r.bytes)}${methods}) in ${formatDuration(r.durationMs)}`;
}

export async function runCreate(flags: CreateFlags): Promise<void> {
  const controller = new AbortController();
  const interrupted = new MarError('OUTPUT_FAILED', 'interrupted; the partial output was removed');
  const onSignal = (): void => controller.abort(interrupted);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const quiet = flags.quiet === true;
  let bar: ProgressBar | undefined;
  const options: CreateArchiveOptions = {
    modelName: flags.modelName,
    handler: flags.handler,
    runtime: flags.runtime,
    archiveFormat: flags.archiveFormat,
    force: flags.force === true,
    archiveSha256: flags.json === true,
    signal: controller.signal,
    onNote: (m) => {
      if (!quiet) process.stderr.write(`${m}\n`);
    },
    onProgress: (p) => {
      if (quiet || !process.stderr.isTTY || p.bytesTotal < PROGRESS_MIN_BYTES) return;
      bar ??= new ProgressBar({ stream: process.stderr, label: flags.modelName });
      bar.update(p);
    },
    ...(flags.modelPath !== undefined ? { modelPath: flags.modelPath } : {}),
    ...(flags.exportPath !== undefined ? { exportPath: flags.exportPath } : {}),
    ...(flags.serializedFile !== undefined ? { serializedFile: flags.serializedFile } : {}),
    ...(flags.modelFile !== undefined ? { modelFile: flags.modelFile } : {}),
    ...(flags.extraFiles !== undefined ? { extraFiles: flags.extraFiles } : {}),
    ...(flags.requirementsFile !== undefined ? { requirementsFile: flags.requirementsFile } : {}),
    ...(flags.configFile !== undefined ? { configFile: flags.configFile } : {}),
    ...(flags.version !== undefined ? { modelVersion: flags.version } : {}),
    ...(flags.description !== undefined ? { description: flags.description } : {}),
    ...(flags.exclude !== undefined ? { exclude: flags.exclude } : {}),
  };
  let result: CreateResult;
  try {
    // Loaded on use: the writers and the schema compiler are not needed by inspect/verify/extract.
    const { createArchive } = await import('../../archive/pack.js');
    result = await createArchive(options);
  } catch (err) {
    if (err !== interrupted) throw err;
    // Interrupted: report it like any error, but exit as a shell expects after SIGINT.
    bar?.clear();
    printError(err, isDebug(process.argv));
    process.exitCode = 130;
    return;
  } finally {
    bar?.clear();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (flags.json) {
    const { entries: _entries, ...rest } = result;
    process.stdout.write(`${JSON.stringify({ ...rest, durationMs: Math.round(result.durationMs) })}\n`);
  } else if (!quiet) {
    process.stdout.write(`${summary(result, process.cwd())}\n`);
  }
}

/**
 * Root-level create flags (`model-archiver --model-name x ...`, as MMS/TorchServe scripts call it) are routed
 * to `create`. Subcommand names, help and the tool's version flag are left alone.
 */
export function routeCreateArgs(argv: readonly string[]): string[] {
  let i = 0;
  while (argv[i] === '--debug') i++;
  const head = argv[i];
  if (head === undefined || !head.startsWith('-')) return [...argv];
  if (head === '-h' || head === '--help' || head === '--archiver-version') return [...argv];
  return ['create', ...argv];
}

export function registerCreate(program: Command): void {
  const cmd = program
    .command('create')
    .description('create a model archive (the create flags also work without the word "create", as in MMS/TorchServe scripts)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  model-archiver --model-name squeezenet --model-path ./model --handler handler:handle\n' +
        '  model-archiver create --model-name bert --handler my_handler.py --serialized-file model.pt \\\n' +
        '      --extra-files vocab.txt,config.json -v 1.0 --export-path model_store\n',
    );
  addCreateOptions(cmd).action(async (flags: CreateFlags) => {
    if (flags.exclude) flags.exclude = flags.exclude.map((g) => g.trim()).filter((g) => g !== '');
    await runCreate(flags);
  });
}
