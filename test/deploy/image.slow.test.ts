/**
 * Builds the image where a Docker engine runs (the slow set: the build installs packages from the network), and
 * checks what a cluster relies on: it runs the entrypoint as uid 1000, and the entrypoint is the one of this checkout.
 * Without an engine (this project's machines: `docker` is only a client there) the test is skipped; dockerfile.test.ts
 * checks the Dockerfile statically and test/cli/entrypoint.test.ts runs the entrypoint on the host.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packagePath, TOOL_VERSION } from '../../src/util/package-info.js';
import { run } from '../helpers/util.js';

const engine = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 30_000 }).catch(() => null);
const skip = engine?.code === 0 ? false : 'needs a Docker engine (`docker info` failed): install and start Docker to build the image';

test('the image builds, runs as uid 1000 and its entrypoint is this version', { skip, timeout: 30 * 60_000 }, async () => {
  const tag = `mar-tools:test-${process.pid}`;
  const built = await run('docker', ['build', '-t', tag, '.'], { cwd: packagePath(), timeoutMs: 25 * 60_000 });
  assert.equal(built.code, 0, built.stderr);
  try {
    const uid = await run('docker', ['run', '--rm', '--entrypoint', 'id', tag, '-u']);
    assert.equal(uid.stdout.trim(), '1000');
    const version = await run('docker', ['run', '--rm', tag, '--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), TOOL_VERSION);
  } finally {
    await run('docker', ['image', 'rm', '-f', tag]);
  }
});
