/** Lines a child process prints, and a way to wait for one (shared by the benchmarks that start servers). */

import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Resolves with the first stdout/stderr line (already seen or to come) matching re; rejects if the process exits first. */
export function lineWaiter(proc: ChildProcess): (re: RegExp) => Promise<string> {
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const on = (line: string): void => {
    lines.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.re.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
    }
  };
  if (proc.stdout) createInterface({ input: proc.stdout }).on('line', on);
  if (proc.stderr) createInterface({ input: proc.stderr }).on('line', on);
  return (re) => {
    const seen = lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      waiters.push({ re, resolve });
      proc.once('exit', () => reject(new Error(`process exited before ${re}:\n${lines.slice(-20).join('\n')}`)));
    });
  };
}
