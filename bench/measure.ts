/** What the process benchmarks share: timing a command with its peak RSS, medians, verdicts and a markdown table. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const HAS_TIME = existsSync('/usr/bin/time');

export interface Measurement {
  wallMs: number;
  rssKb: number;
  code: number | null;
  stderr: string;
}

/**
 * NODE_EXTRA_CA_CERTS makes node parse that CA bundle on every start. The sandbox these benchmarks run in sets it (for
 * its egress proxy), and there it costs each node start ~38 ms (`node -e ""`: 61 ms with it, 23 ms without), which a
 * host or pod that does not set it never pays. The benchmarks that time process starts leave it out of their
 * children's environment: `envWithoutExtraCa` for an environment they pass, `withoutExtraCaCerts` around code that
 * spawns with process.env.
 */
export function envWithoutExtraCa(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _, ...rest } = env;
  return rest;
}

export async function withoutExtraCaCerts<T>(measure: () => Promise<T>): Promise<T> {
  const saved = process.env['NODE_EXTRA_CA_CERTS'];
  delete process.env['NODE_EXTRA_CA_CERTS'];
  try {
    return await measure();
  } finally {
    if (saved !== undefined) process.env['NODE_EXTRA_CA_CERTS'] = saved;
  }
}

/** Runs a command to its end; peak RSS from /usr/bin/time -v, or from polling VmHWM. */
export function measure(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const argv = HAS_TIME ? (['/usr/bin/time', ['-v', cmd, ...args]] as const) : ([cmd, args] as const);
    const started = performance.now();
    const child = spawn(argv[0], [...argv[1]], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let hwm = 0;
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const poll = HAS_TIME
      ? undefined
      : setInterval(() => {
          peakRssKb(child.pid!)
            .then((kb) => (hwm = Math.max(hwm, kb)))
            .catch(() => undefined);
        }, 20);
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - started;
      if (poll) clearInterval(poll);
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      resolve({ wallMs, rssKb: m ? Number(m[1]) : hwm, code, stderr });
    });
  });
}

/** A running process's peak RSS so far (VmHWM), in KiB. */
export async function peakRssKb(pid: number): Promise<number> {
  const m = /VmHWM:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');

/** A markdown table with padded columns (first row: the header). */
export function markdownTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `| ${r.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
