/**
 * Shared by the torch tests: which Python has torch (Debian's /usr/bin/python3 unless MAR_TORCH_PYTHON says
 * otherwise), the one-line skip when it has none, building the examples' models once per test file
 * (examples/build_all.py), archiving them with our CLI as examples/<name>/run.sh does, and comparing answers
 * with the direct model call.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packagePath } from '../../src/util/package-info.js';
import { archiver, run, server } from '../helpers/util.js';

/** The interpreter the torch tests run workers with. */
export const TORCH_PYTHON = process.env['MAR_TORCH_PYTHON'] ?? '/usr/bin/python3';

/** False when TORCH_PYTHON has torch, torchvision and Pillow; else the one line a skipped test prints. */
export const TORCH_SKIP: string | false = (() => {
  const r = spawnSync(TORCH_PYTHON, ['-c', 'import torch, torchvision, PIL'], { encoding: 'utf8' });
  return r.status === 0
    ? false
    : `needs torch, torchvision and Pillow for ${TORCH_PYTHON}: apt-get install python3-torch python3-torchvision python3-pil (or set MAR_TORCH_PYTHON)`;
})();

export const EXAMPLES = packagePath('examples');

/** The examples, and the model-archiver arguments their run.sh uses (paths relative to the build dir, or `@` the example dir). */
export const EXAMPLE_ARCHIVES = {
  image_classifier: {
    model: 'resnet18',
    args: ['--serialized-file', 'resnet18.pt', '--extra-files', 'index_to_name.json', '--handler', 'image_classifier'],
    inputs: ['image_1.jpg', 'image_2.jpg', 'image_3.jpg', 'image_4.jpg'],
    bad: 'not_an_image.jpg',
  },
  mnist: {
    model: 'mnist',
    args: ['--model-file', '@mnist.py', '--serialized-file', 'digit_net.pt', '--handler', '@mnist_handler.py'],
    inputs: ['digit_1.png', 'digit_2.png', 'digit_3.png', 'digit_4.png'],
    bad: 'not_an_image.png',
  },
  object_detector: {
    model: 'detector',
    args: [
      '--model-file',
      '@detector_model.py',
      '--serialized-file',
      'detector.pt',
      '--extra-files',
      'index_to_name.json',
      '--handler',
      'object_detector',
    ],
    inputs: ['street_1.jpg', 'street_2.jpg', 'street_3.jpg', 'street_4.jpg'],
    bad: 'not_an_image.jpg',
  },
  image_segmenter: {
    model: 'segmenter',
    args: ['--serialized-file', 'segmenter.pt', '--handler', 'image_segmenter'],
    inputs: ['scene_1.jpg', 'scene_2.jpg', 'scene_3.jpg', 'scene_4.jpg'],
    bad: 'not_an_image.jpg',
  },
  text_classifier: {
    model: 'news',
    args: [
      '--model-file',
      '@text_model.py',
      '--serialized-file',
      'text_classifier.pt',
      '--extra-files',
      'index_to_name.json,source_vocab.pt',
      '--handler',
      'text_classifier',
    ],
    inputs: ['text_1.txt', 'text_2.txt', 'text_3.txt', 'text_4.txt'],
    bad: 'empty.txt',
  },
} as const;

export type ExampleName = keyof typeof EXAMPLE_ARCHIVES;

/** One built example: its files, its archive, its expected answers (the model called directly). */
export interface BuiltExample {
  name: ExampleName;
  model: string;
  dir: string;
  mar: string;
  inputs: readonly string[];
  bad: string;
  expected: Record<string, unknown>;
  input(file: string): string;
}

/** Builds the examples' models into `dir` (one Python process) and archives each into `dir/store` with our CLI. */
export async function buildExamples<N extends ExampleName>(dir: string, names: readonly N[]): Promise<Record<N, BuiltExample>> {
  const r = await run(TORCH_PYTHON, [join(EXAMPLES, 'build_all.py'), dir, ...names], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, `build_all.py failed:\n${r.stderr}`);
  const store = join(dir, 'store');
  const out = {} as Record<N, BuiltExample>;
  await Promise.all(
    names.map(async (name) => {
      const spec = EXAMPLE_ARCHIVES[name];
      const built = join(dir, name);
      const args = spec.args.map((a) => (a.startsWith('--') ? a : resolveArg(a, name, built)));
      const a = await archiver(['--model-name', spec.model, '--version', '1.0', ...args, '--export-path', store, '-q']);
      assert.equal(a.code, 0, a.stderr);
      out[name] = {
        name,
        model: spec.model,
        dir: built,
        mar: join(store, `${spec.model}.mar`),
        inputs: spec.inputs,
        bad: spec.bad,
        expected: JSON.parse(await readFile(join(built, 'expected.json'), 'utf8')) as Record<string, unknown>,
        input: (file) => join(built, 'inputs', file),
      };
    }),
  );
  return out;
}

/** `@file` is a file of the example's source directory, `a,b` a list of built files, a bare handler name stays. */
function resolveArg(value: string, name: ExampleName, built: string): string {
  if (value.startsWith('@')) return join(EXAMPLES, name, value.slice(1));
  if (!/\.\w+$/.test(value)) return value;
  return value
    .split(',')
    .map((f) => join(built, f))
    .join(',');
}

const TOLERANCE = 1e-5;

/** Asserts `actual` equals `expected`: same keys in the same order, same list lengths, numbers within 1e-5 (as examples/check_answers.py). */
export function assertAnswer(actual: unknown, expected: unknown, where: string): void {
  if (typeof expected === 'number') {
    assert.equal(typeof actual, 'number', `${where}: expected a number, got ${JSON.stringify(actual)}`);
    const tol = TOLERANCE * Math.max(1, Math.abs(expected));
    assert.ok(Math.abs((actual as number) - expected) <= tol, `${where}: expected ${expected}, got ${actual}`);
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${where}: expected a list of ${expected.length}`);
    for (const [i, e] of expected.entries()) assertAnswer((actual as unknown[])[i], e, `${where}[${i}]`);
  } else if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object' && !Array.isArray(actual), `${where}: expected an object`);
    assert.deepEqual(Object.keys(actual as object), Object.keys(expected), `${where}: keys`);
    for (const [k, v] of Object.entries(expected)) assertAnswer((actual as Record<string, unknown>)[k], v, `${where}.${k}`);
  } else {
    assert.deepEqual(actual, expected, where);
  }
}

export interface PredictJson {
  status: number;
  body?: string;
  error?: string;
}

/** `model-server predict --json` on the given input files (one batch when they fit), with the torch Python. */
export async function predictJson(
  ex: BuiltExample,
  files: readonly string[],
): Promise<{ code: number | null; results: PredictJson[]; stderr: string }> {
  const r = await server(['predict', ex.mar, '--python', TORCH_PYTHON, '--json', '-q', ...files.flatMap((f) => ['-i', ex.input(f)])]);
  assert.ok(r.stdout.trim().startsWith('['), `predict printed no JSON:\n${r.stderr}`);
  return { code: r.code, results: JSON.parse(r.stdout) as PredictJson[], stderr: r.stderr };
}
