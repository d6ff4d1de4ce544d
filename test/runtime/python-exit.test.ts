/**
 * The Python worker's exit after serving (_mar_worker/shutdown.py) skips only the module teardown: a handler's
 * non-daemon threads are waited for, its atexit hooks run and weakref.finalize's clean-ups (a TemporaryDirectory)
 * happen, as with the interpreter's own exit.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { server, tempDir } from '../helpers/util.js';

const HANDLER = `import atexit, os, tempfile, threading, time

OUT = os.environ["EXIT_TEST_OUT"]
_tmp = tempfile.TemporaryDirectory()


def _touch(name):
    open(os.path.join(OUT, name), "w").close()


atexit.register(_touch, "atexit")


def handle(data, context):
    if data is None:
        return None

    def late():
        time.sleep(0.1)  # still running when the frontend closes the connection
        _touch("thread")

    threading.Thread(target=late).start()
    return [_tmp.name]
`;

test("a handler's atexit hooks, non-daemon threads and TemporaryDirectory clean-up run when the worker exits", async (t) => {
  const dir = await tempDir(t, 'mar-exit-');
  const model = join(dir, 'm');
  const out = join(dir, 'out');
  await mkdir(join(model, 'MAR-INF'), { recursive: true });
  await mkdir(out);
  await writeFile(join(model, 'exiting.py'), HANDLER);
  await writeFile(
    join(model, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: 'm', handler: 'exiting:handle' } }),
  );
  const r = await server(['predict', model, '--data', 'x', '--quiet'], {
    env: { ...process.env, EXIT_TEST_OUT: out, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await readdir(out)).sort(), ['atexit', 'thread']);
  assert.ok(r.stdout.length > 0 && !existsSync(r.stdout), `the TemporaryDirectory ${r.stdout} is removed`);
});
