/**
 * install_py_dep_per_model: an archive's requirements file is pip-installed once per digest into
 * python_deps_location and put on the workers' PYTHONPATH; reused by other models and after a restart; a
 * failing install fails the register with pip's last lines and leaves no directory behind. The wheel is built
 * by the test and installed with --no-index --find-links (no package index is contacted).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { tempDir } from '../helpers/util.js';
import { http, register, startServer } from './server-helpers.js';

function hasPip(): boolean {
  try {
    execFileSync('python3', ['-m', 'pip', '--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const SKIP = hasPip() ? false : 'needs pip for python3 (apt-get install python3-pip)';

/** A pure-Python wheel `marpydep-1.0` whose module holds VALUE, written with zipfile (a valid RECORD included). */
const WHEEL_SCRIPT = `
import base64, hashlib, sys, zipfile
out = sys.argv[1]
files = {
    "marpydep/__init__.py": b"VALUE = 'from the wheel'\\n",
    "marpydep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: marpydep\\nVersion: 1.0\\n",
    "marpydep-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = ""
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += "%s,sha256=%s,%d\\n" % (name, digest, len(data))
record += "marpydep-1.0.dist-info/RECORD,,\\n"
with zipfile.ZipFile(out, "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr("marpydep-1.0.dist-info/RECORD", record)
`;

const HANDLER = 'import marpydep\n\n\ndef handle(data, context):\n    return None if data is None else [marpydep.VALUE] * len(data)\n';

test('requirements are installed once per digest, reused across models and restarts, on the workers PYTHONPATH', {
  skip: SKIP,
}, async (t) => {
  const dir = await tempDir(t);
  const wheels = join(dir, 'wheels');
  await mkdir(wheels);
  execFileSync('python3', ['-c', WHEEL_SCRIPT, join(wheels, 'marpydep-1.0-py3-none-any.whl')]);
  const deps = join(dir, 'deps');
  const archive = async (name: string, requirements: string): Promise<string> => {
    const src = join(dir, `src-${name}`);
    await mkdir(src);
    await writeFile(join(src, 'handler.py'), HANDLER);
    await writeFile(join(src, 'requirements.txt'), requirements);
    const out = join(dir, `out-${name}`);
    const created = await createArchive({
      modelName: name,
      handler: 'handler:handle',
      modelPath: src,
      requirementsFile: join(src, 'requirements.txt'),
      exportPath: out,
    });
    return created.path;
  };
  const good = `--no-index\n--find-links ${wheels}\nmarpydep==1.0\n`;
  const props = { install_py_dep_per_model: true, python_deps_location: deps };
  const load = { dialect: 'torchserve', disableTokenAuth: true, enableModelApi: true } as const;

  const s = await startServer(t, { load, props });
  for (const name of ['one', 'two']) await cp(await archive(name, good), join(s.store, `${name}.mar`));
  const one = await register(s, { url: 'one.mar', initial_workers: 1 });
  assert.equal(one.status, 200, one.text);
  assert.equal((await http(s.inference, 'POST', '/predictions/one', 'x')).text, 'from the wheel');
  assert.equal((await register(s, { url: 'two.mar', initial_workers: 1 })).status, 200);
  assert.equal((await http(s.inference, 'POST', '/predictions/two', 'x')).text, 'from the wheel');
  assert.equal(s.lines.filter((l) => /Installing the Python requirements/.test(l)).length, 1, 'the second model reuses the install');
  assert.equal((await readdir(deps)).length, 1, 'one directory per requirements digest');
  await s.stop();

  const again = await startServer(t, { load, props });
  await cp(join(s.store, 'one.mar'), join(again.store, 'one.mar'));
  assert.equal((await register(again, { url: 'one.mar', initial_workers: 1 })).status, 200);
  assert.equal((await http(again.inference, 'POST', '/predictions/one', 'x')).text, 'from the wheel');
  assert.equal(again.lines.filter((l) => /Installing/.test(l)).length, 0, 'reused after a restart');

  // a requirement pip cannot satisfy: TorchServe's message with pip's last lines; nothing half-filled stays
  await cp(await archive('bad', `--no-index\n--find-links ${wheels}\nnosuchpkg==9.9\n`), join(again.store, 'bad.mar'));
  const bad = await register(again, { url: 'bad.mar', initial_workers: 1 });
  assert.equal(bad.status, 400);
  assert.equal(bad.json().type, 'ModelException');
  assert.match(bad.json().message, /^Custom pip package installation failed for model bad: pip exited with code 1: .*nosuchpkg/);
  assert.equal((await readdir(deps)).length, 1, 'the failed install left no directory');
  assert.equal((await http(again.management, 'GET', '/models/bad')).status, 404);

  // without install_py_dep_per_model the requirements are not installed: the handler cannot import its package
  const off = await startServer(t, { load });
  await cp(join(s.store, 'one.mar'), join(off.store, 'one.mar'));
  const missing = await register(off, { url: 'one.mar', initial_workers: 1 });
  assert.equal(missing.status, 500);
  assert.match(missing.json().message, /No module named 'marpydep'/);
});
