import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ARCHIVER_BIN, FIXTURES, SERVER_BIN } from '../helpers/util.js';

/** Runs a CLI whose stdout reader has already gone away (`... | head -0`): exit code and stderr. */
async function withClosedStdout(bin: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy(); // closes our end of the pipe before the child writes anything
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stderr };
}

describe('output into a closed pipe', () => {
  it('help and inspect output piped into a reader that quit: exit 0, no stack trace', async () => {
    for (const [bin, args] of [
      [ARCHIVER_BIN, ['create', '--help']],
      [ARCHIVER_BIN, ['inspect', join(FIXTURES, 'models', 'example'), '--json']],
      [SERVER_BIN, ['--help']],
    ] as const) {
      const r = await withClosedStdout(bin, [...args]);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, '', args.join(' '));
    }
  });
});
