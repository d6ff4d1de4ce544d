import type { WriteStream } from 'node:tty';
import { styleText } from 'node:util';
import { type Command, CommanderError } from 'commander';
import { isMarError } from '../errors.js';

/**
 * `error:` in red where stderr shows colours (a terminal that has them, or FORCE_COLOR), as chalk would; Node's own
 * check, because every command pays for loading chalk (~10 ms of a cold start) and most never print an error.
 */
function red(text: string): string {
  const force = process.env['FORCE_COLOR'];
  const colors =
    force !== undefined && force !== '' ? force !== '0' && force !== 'false' : ((process.stderr as WriteStream).hasColors?.() ?? false);
  return colors ? styleText('red', text) : text;
}

/** True when the user asked for stack traces (`--debug` anywhere on the command line or MAR_DEBUG=1). */
export function isDebug(argv: readonly string[]): boolean {
  return argv.includes('--debug') || process.env['MAR_DEBUG'] === '1';
}

/** Prints one line for an error: `error: <message>`, plus the stack and causes only with --debug. */
export function printError(err: unknown, debug: boolean): void {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${red('error:')} ${message.split('\n')[0]}\n`);
  if (debug && err instanceof Error) {
    process.stderr.write(`${err.stack ?? ''}\n`);
    let cause = (err as { cause?: unknown }).cause;
    while (cause) {
      process.stderr.write(`caused by: ${cause instanceof Error ? cause.stack : String(cause)}\n`);
      cause = cause instanceof Error ? (cause as { cause?: unknown }).cause : undefined;
    }
  }
}

/**
 * Runs a commander program and turns every outcome into an exit code: 0 ok, 2 usage errors,
 * 1 for any other error (one line on stderr, stack only with --debug). Never calls process.exit itself.
 */
export async function runProgram(program: Command, argv: readonly string[]): Promise<number> {
  const debug = isDebug(argv);
  installStdoutErrorHandler(debug);
  const configure = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.configureOutput({
      writeErr: (str) => process.stderr.write(str),
      outputError: (str, write) => write(`${red('error:')} ${str.replace(/^error:\s*/, '')}`),
    });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // Help asked for (`help`) is a success; help shown because no command was given is a usage error.
      if (err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2;
      if (err.exitCode === 0) return 0;
      if (!/^\(outputHelp\)$/.test(err.message)) process.stderr.write(`Run with --help for usage.\n`);
      return 2;
    }
    printError(err, debug);
    if (isMarError(err)) return err.exitCode;
    return 1;
  }
}

let stdoutHandled = false;

/**
 * `model-archiver ... | head`: the reader closing the pipe is not our error, so EPIPE ends the process quietly
 * with the status so far (node ignores SIGPIPE, so without this the write error surfaces as a stack trace).
 * Any other stdout failure is one line and exit 1.
 */
function installStdoutErrorHandler(debug: boolean): void {
  if (stdoutHandled) return;
  stdoutHandled = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    printError(new Error(`cannot write to standard output: ${err.message}`), debug);
    process.exit(1);
  });
}
