/**
 * The slower built-in handlers with real PyTorch models (tests/torch/torch-helpers.ts): a Faster R-CNN with
 * object_detector, LR-ASPP (TorchScript) with image_segmenter (answers of ~2.5 MB each), an EmbeddingBag model with
 * text_classifier and a plain-dict vocabulary (no torchtext). Same checks as vision-handlers.test.ts: predict with a
 * batch of 4 plus a bad input, then the server with 4 concurrent requests; answers equal the direct model call
 * within 1e-5, the bad input gets 400 JSON on its own, the worker keeps serving. Also examples/mnist/run.sh end to end.
 */

import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../helpers/util.js';
import { http, register, startServer } from '../server/server-helpers.js';
import { assertAnswer, type BuiltExample, buildExamples, EXAMPLES, predictJson, TORCH_PYTHON, TORCH_SKIP } from './torch-helpers.js';

const NAMES = ['object_detector', 'image_segmenter', 'text_classifier'] as const;
const BAD_MESSAGE: Record<(typeof NAMES)[number], RegExp> = {
  object_detector: /not an image Pillow can read/,
  image_segmenter: /not an image Pillow can read/,
  text_classifier: /^the request has no text/,
};

describe('PyTorch detector, segmenter and text classifier through the built-in handlers', { skip: TORCH_SKIP }, () => {
  let dir = '';
  let built: Record<(typeof NAMES)[number], BuiltExample>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mar-torch-slow-'));
    built = await buildExamples(dir, NAMES);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const name of NAMES) {
    it(`${name}: predict answers a batch of 4 as the direct call, and the bad input alone with 400`, async () => {
      const ex = built[name];
      const { code, results } = await predictJson(ex, [...ex.inputs, ex.bad]);
      assert.equal(code, 1);
      assert.deepEqual(
        results.map((r) => r.status),
        [200, 200, 200, 200, 400],
      );
      for (const [i, f] of ex.inputs.entries()) assertAnswer(JSON.parse(results[i]!.body!), ex.expected[f], f);
      const bad = JSON.parse(results[4]!.body!) as { code: number; message: string };
      assert.equal(bad.code, 400);
      assert.match(bad.message, BAD_MESSAGE[name]);
    });
  }

  it('the server: 4 concurrent requests per model, answers equal the direct call, a bad input gets 400 JSON, the worker keeps serving', async (t) => {
    const s = await startServer(t, { props: { python: TORCH_PYTHON } });
    for (const name of NAMES) await copyFile(built[name].mar, join(s.store, `${built[name].model}.mar`));
    const registered = await Promise.all(
      NAMES.map((name) => register(s, { url: `${built[name].model}.mar`, batch_size: 4, max_batch_delay: 500, initial_workers: 1 })),
    );
    assert.deepEqual(
      registered.map((r) => r.status),
      [200, 200, 200],
      registered.map((r) => r.text).join('\n'),
    );
    for (const name of NAMES) {
      const ex = built[name];
      const post = async (file: string) => http(s.inference, 'POST', `/predictions/${ex.model}`, await readFile(ex.input(file)));
      const answers = await Promise.all(ex.inputs.map(post));
      answers.forEach((r, i) => {
        assert.equal(r.status, 200, r.text.slice(0, 300));
        assertAnswer(r.json(), ex.expected[ex.inputs[i]!], `${name} ${ex.inputs[i]}`);
      });
      const bad = await post(ex.bad);
      assert.equal(bad.status, 400, bad.text);
      assert.match(bad.json().message, BAD_MESSAGE[name]);
      assert.equal((await post(ex.inputs[1]!)).status, 200);
    }
  });
});

/** A port nothing listens on right now (for the example script, which takes a fixed port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

describe('examples/mnist/run.sh', { skip: TORCH_SKIP }, () => {
  it('builds, archives, predicts and serves, and the answers equal the direct model call', async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'mar-example-'));
    t.after(() => rm(out, { recursive: true, force: true }));
    const port = await freePort();
    const r = await run('bash', [join(EXAMPLES, 'mnist', 'run.sh')], {
      env: { MAR_PYTHON: TORCH_PYTHON, OUT: out, PORT: String(port) },
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.stdout.match(/^ok: 4 answers equal the direct model call/gm)?.length, 2, r.stdout);
    assert.match(r.stdout, /"message": "mnist: every request must be a PNG or JPEG image of a digit"\n\}\n? \(HTTP 400\)/);
    assert.match(r.stdout, /then digit_1\.png: HTTP 200/);
  });
});
