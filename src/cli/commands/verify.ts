import chalk from 'chalk';
import type { Command } from 'commander';
import type { Problem, VerifyResult } from '../../archive/verify.js';
import { MarError } from '../../errors.js';
import type { PythonProbe } from '../../runtime/python-env.js';

function line(p: Problem): string {
  return `${p.path !== undefined ? `${p.path}: ` : ''}${p.message} [${p.code}]`;
}

/** What verify learnt about the workers' Python: the probe, or why it could not run. */
export type PythonReport = { probe: PythonProbe } | { command: string; error: string };

export function renderVerify(r: VerifyResult, python?: PythonReport): string {
  let out = '';
  if (r.ok) out += `${chalk.green('ok:')} ${r.path} (${r.entryCount} entries, all checks passed)\n`;
  else {
    out += `${chalk.red('FAILED:')} ${r.path} (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'})\n`;
    for (const p of r.problems) out += `${chalk.red('problem:')} ${line(p)}\n`;
  }
  // Which handler runs, when that is not simply a module of the archive: a built-in, or one that needs torch & co.
  if (r.handler && (python || r.handler.runs.startsWith('a TorchServe'))) out += `handler: ${r.handler.handler}: ${r.handler.runs}\n`;
  if (python && 'probe' in python) out += `python: ${describePython(python.probe)}\n`;
  for (const w of r.warnings) out += `${chalk.yellow('warning:')} ${line(w)}\n`;
  return out;
}

function describePython(p: PythonProbe): string {
  const found = Object.entries(p.packages).map(([name, version]) => `${name} ${version ?? 'missing'}`);
  return `Python ${p.version} at ${p.executable}${found.length ? `: ${found.join(', ')}` : ''}`;
}

/** Asks the workers' Python which of the handler's packages it has; a missing one (or no Python) is a warning. */
async function checkPython(r: VerifyResult, command: string | undefined): Promise<PythonReport | undefined> {
  const needs = r.handler?.needs ?? [];
  if (needs.length === 0) return undefined;
  const { defaultPython, describeInterpreter, probePython } = await import('../../runtime/python-env.js');
  const python = command ?? defaultPython();
  const hint = 'choose the interpreter with --python or MAR_PYTHON (the server: its python config key)';
  try {
    const probe = await probePython(python, needs);
    const missing = needs.filter((n) => probe.packages[n] === null);
    if (missing.length) {
      r.warnings.push({
        code: 'PYTHON_PACKAGE_MISSING',
        message: `the handler needs ${needs.join(', ')}; ${describeInterpreter(probe)} lacks ${missing.join(', ')}, so the model will fail to load: install ${missing.length === 1 ? 'it' : 'them'} for that interpreter or ${hint}`,
      });
    }
    return { probe };
  } catch (err) {
    r.warnings.push({
      code: 'PYTHON_PACKAGE_MISSING',
      message: `the handler needs ${needs.join(', ')}, but ${(err as Error).message}; ${hint}`,
    });
    return { command: python, error: (err as Error).message };
  }
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check that MMS and TorchServe will load an archive as intended (structure, manifest, handler, files, CRCs, digests)')
    .argument('<archive>', 'a .mar, .tar.gz or unpacked model directory')
    .option('--json', 'print a JSON result ({ok, problems[], warnings[], handler, python}) for scripts')
    .option('--python <path>', "the workers' Python, asked which packages the handler needs (default: $MAR_PYTHON, else python3)")
    .action(async (archive: string, opts: { json?: boolean; python?: string }) => {
      const { verifyArchive } = await import('../../archive/verify.js');
      const result = await verifyArchive(archive);
      const python = await checkPython(result, opts.python);
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify(python ? { ...result, python: 'probe' in python ? python.probe : python } : result, null, 2)}\n`,
        );
        if (!result.ok) process.exitCode = 1;
        return;
      }
      process.stdout.write(renderVerify(result, python));
      if (!result.ok) {
        const n = result.problems.length;
        throw new MarError('VERIFY_FAILED', `${archive} failed verification with ${n} problem${n === 1 ? '' : 's'} (listed above)`, {
          details: result.problems,
        });
      }
    });
}
