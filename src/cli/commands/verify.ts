import chalk from 'chalk';
import type { Command } from 'commander';
import type { Problem, VerifyResult } from '../../archive/verify.js';
import { MarError } from '../../errors.js';

function line(p: Problem): string {
  return `${p.path !== undefined ? `${p.path}: ` : ''}${p.message} [${p.code}]`;
}

export function renderVerify(r: VerifyResult): string {
  let out = '';
  if (r.ok) out += `${chalk.green('ok:')} ${r.path} (${r.entryCount} entries, all checks passed)\n`;
  else {
    out += `${chalk.red('FAILED:')} ${r.path} (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'})\n`;
    for (const p of r.problems) out += `${chalk.red('problem:')} ${line(p)}\n`;
  }
  for (const w of r.warnings) out += `${chalk.yellow('warning:')} ${line(w)}\n`;
  return out;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check that MMS and TorchServe will load an archive as intended (structure, manifest, handler, files, CRCs, digests)')
    .argument('<archive>', 'a .mar, .tar.gz or unpacked model directory')
    .option('--json', 'print a JSON result ({ok, problems[], warnings[]}) for scripts')
    .action(async (archive: string, opts: { json?: boolean }) => {
      const { verifyArchive } = await import('../../archive/verify.js');
      const result = await verifyArchive(archive);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        if (!result.ok) process.exitCode = 1;
        return;
      }
      process.stdout.write(renderVerify(result));
      if (!result.ok) {
        const n = result.problems.length;
        throw new MarError('VERIFY_FAILED', `${archive} failed verification with ${n} problem${n === 1 ? '' : 's'} (listed above)`, {
          details: result.problems,
        });
      }
    });
}
