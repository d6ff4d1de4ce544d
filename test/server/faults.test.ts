/**
 * Memory faults on the request path: a handler answering more than max_response_size, and a handler leaking
 * until its worker is OOM-killed. The client gets MMS's error, the frontend stays small, and the worker is
 * replaced.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/util.js';
import { http, register, registerPy, startServer } from './server-helpers.js';

const MiB = 1024 * 1024;
const workerDied = { code: 500, type: 'InternalServerException', message: 'Worker died.' };

for (const runtime of ['python', 'node'] as const) {
  test(`${runtime}: a reply over max_response_size answers 500 "Worker died." without the frontend holding it; the worker is replaced`, async (t) => {
    const s = await startServer(t, { props: { max_response_size: MiB } });
    const r =
      runtime === 'python'
        ? await registerPy(s, 'big', 'big_reply:handle')
        : await register(s, { url: 'node', model_name: 'big', handler: 'big_reply:handle', runtime: 'node', initial_workers: 1 });
    assert.equal(r.status, 200, r.text);
    const before = process.memoryUsage().rss;
    const big = await http(s.inference, 'POST', '/predictions/big', String(256 * MiB), { 'content-type': 'text/plain' });
    assert.deepEqual([big.status, big.json()], [500, workerDied]);
    // the 256 MiB reply was refused by its length field, not read: the frontend grew by far less than it
    const grown = process.memoryUsage().rss - before;
    assert.ok(grown < 64 * MiB, `frontend RSS grew by ${Math.round(grown / MiB)} MiB`);
    await s.waitLine(
      /worker died: frame field body is 268435456 bytes, over the limit of 1048576; raise max_response_size.*\[FRAME_TOO_LARGE\]/,
    );
    // a replacement answers what fits
    const small = await http(s.inference, 'POST', '/predictions/big', String(1000), { 'content-type': 'text/plain' });
    assert.equal(small.status, 200);
    assert.equal(small.body.length, 1000);
  });
}

const LIMIT = 160 * MiB;

/**
 * A cgroup v1 memory group of our own, below this process's, limited to LIMIT; null where there is none to make
 * (no v1 memory controller, not root). The kernel's OOM killer then kills the worker as it would in a container.
 */
function memoryCgroup(): string | null {
  const m = /^\d+:memory:(\/.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'));
  if (!m) return null;
  const dir = join('/sys/fs/cgroup/memory', m[1]!, `mar-test-${process.pid}`);
  try {
    mkdirSync(dir);
  } catch {
    return null;
  }
  try {
    writeFileSync(join(dir, 'memory.limit_in_bytes'), String(LIMIT));
    return dir;
  } catch {
    rmdirSync(dir);
    return null;
  }
}

/**
 * A `python` for the server that runs the worker under a memory limit: inside the cgroup when there is one, else
 * under a watchdog that SIGKILLs it past LIMIT of resident memory (what earlyoom or systemd-oomd do), exiting 137.
 */
function limitedPython(dir: string, cgroup: string | null): string {
  const script = join(dir, 'python-limited.sh');
  const body = cgroup
    ? `#!/bin/sh\necho $$ > '${cgroup}/cgroup.procs' && exec python3 "$@"\n`
    : `#!/bin/sh
python3 "$@" &
child=$!
( while kill -0 $child 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$child/status 2>/dev/null)
    if [ "\${rss:-0}" -gt ${LIMIT / 1024} ]; then kill -9 $child; fi
    sleep 0.05
  done ) &
wait $child
exit $?
`;
  writeFileSync(script, body);
  chmodSync(script, 0o755);
  return script;
}

test('a handler that leaks until its worker is OOM-killed: 507 "Worker died.", logged as out of memory, worker replaced', async (t) => {
  const dir = await tempDir(t);
  const cgroup = memoryCgroup();
  t.diagnostic(
    cgroup ? `memory cgroup ${cgroup} (${LIMIT} bytes)` : 'no writable memory cgroup: a watchdog SIGKILLs the worker past the limit',
  );
  const s = await startServer(t, { props: { python: limitedPython(dir, cgroup) } });
  // the group can only be removed once its processes are gone: after the server stopped (registered before it)
  t.after(() => {
    if (cgroup) rmdirSync(cgroup);
  });
  assert.equal((await registerPy(s, 'leak', 'leak:handle')).status, 200);
  const pid = (await http(s.management, 'GET', '/models/leak')).json().workers[0].pid;
  assert.equal((await http(s.inference, 'POST', '/predictions/leak', 'ok')).text, 'OK');
  const leaked = await http(s.inference, 'POST', '/predictions/leak', 'leak');
  assert.deepEqual([leaked.status, leaked.json()], [507, { ...workerDied, code: 507 }]);
  await s.waitLine(/worker died: Worker died\. \[WORKER_OUT_OF_MEMORY\]/);
  // replaced: a new worker (another pid) answers
  const again = await http(s.inference, 'POST', '/predictions/leak', 'ok');
  assert.equal(again.text, 'OK');
  const now = (await http(s.management, 'GET', '/models/leak')).json().workers[0];
  assert.notEqual(now.pid, pid);
  assert.equal(now.status, 'READY');
});
