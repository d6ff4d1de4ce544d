/**
 * Real PyTorch models through the whole path, with Debian's torch (tests/torch/torch-helpers.ts): resnet18 as
 * TorchScript with the built-in image_classifier handler, and an eager MNIST-style model with a custom BaseHandler
 * subclass (examples/). Each is archived with our CLI in TorchServe style, run with `model-server predict` (a batch
 * of 4) and served over HTTP (4 concurrent requests batched); every answer equals the model called directly in
 * Python (examples/*\/build_model.py) within 1e-5, and a broken image gets a 4xx JSON error while the worker keeps
 * serving. The slower handlers (detector, segmenter, text) are in torch-handlers.slow.test.ts.
 */

import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { http, register, startServer } from '../server/server-helpers.js';
import { assertAnswer, buildExamples, predictJson, TORCH_PYTHON, TORCH_SKIP } from './torch-helpers.js';

describe('PyTorch image models: resnet18 + image_classifier, eager MNIST + a BaseHandler subclass', { skip: TORCH_SKIP }, () => {
  let dir = '';
  let built: Awaited<ReturnType<typeof buildExamples<'image_classifier' | 'mnist'>>>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mar-torch-'));
    built = await buildExamples(dir, ['image_classifier', 'mnist']);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('predict: 4 images and a broken one in one batch; the 4 equal the direct call, the broken one alone gets 400 with the handler text', async () => {
    const ex = built.image_classifier;
    const { code, results } = await predictJson(ex, [...ex.inputs, ex.bad]);
    assert.equal(code, 1, 'one input failed, so the run fails');
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200, 400],
    );
    for (const [i, f] of ex.inputs.entries()) assertAnswer(JSON.parse(results[i]!.body!), ex.expected[f], f);
    assert.deepEqual(JSON.parse(results[4]!.body!), {
      code: 400,
      type: 'BadRequestException',
      message:
        'the request body is not an image Pillow can read (UnidentifiedImageError); send JPEG, PNG or another format Pillow opens, as the raw body or base64',
    });
  });

  it('predict: the BaseHandler subclass loads the eager model (model file + state dict) and answers a batch of 4', async () => {
    const ex = built.mnist;
    const good = await predictJson(ex, ex.inputs);
    assert.equal(good.code, 0, good.stderr);
    for (const [i, f] of ex.inputs.entries()) assertAnswer(JSON.parse(good.results[i]!.body!), ex.expected[f], f);
  });

  it('the server: 4 concurrent requests batched, answers equal the direct call, a broken image gets 400 JSON, the worker keeps serving', async (t) => {
    const s = await startServer(t, { props: { python: TORCH_PYTHON, metrics_location: 'metrics' } });
    for (const ex of [built.image_classifier, built.mnist]) await copyFile(ex.mar, join(s.store, `${ex.model}.mar`));
    const registered = await Promise.all(
      [built.image_classifier, built.mnist].map((ex) =>
        register(s, { url: `${ex.model}.mar`, batch_size: 4, max_batch_delay: 1000, initial_workers: 1 }),
      ),
    );
    assert.deepEqual(
      registered.map((r) => r.status),
      [200, 200],
      registered.map((r) => r.text).join('\n'),
    );
    // Model load says what runs, on which Python and torch, with how many threads (one worker: all the cores).
    const loadLine = await s.waitLine(/Model resnet18: handler /);
    assert.match(
      loadLine,
      /handler ts\.torch_handler\.image_classifier\.ImageClassifier \(built-in, mar-tools\); Python 3\.\d+\.\d+ at \S+; torch \d+\.\d+\S* with \d+ threads? \(the cores shared among the model's workers\)/,
    );
    assert.match(await s.waitLine(/Model mnist: handler /), /handler mnist_handler\.MNISTDigitHandler; Python /);

    const batches: string[][] = [];
    for (const ex of [built.image_classifier, built.mnist]) {
      const answers = await Promise.all(
        ex.inputs.map((f) => readFile(ex.input(f)).then((body) => http(s.inference, 'POST', `/predictions/${ex.model}`, body))),
      );
      answers.forEach((r, i) => {
        assert.equal(r.status, 200, r.text);
        assertAnswer(r.json(), ex.expected[ex.inputs[i]!], `${ex.model} ${ex.inputs[i]}`);
      });
      batches.push(answers.map((r) => String(r.headers['x-request-id'])).sort());
      const bad = await http(s.inference, 'POST', `/predictions/${ex.model}`, await readFile(ex.input(ex.bad)));
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.headers['content-type'], 'application/json');
      assert.match(
        bad.json().message,
        ex.name === 'mnist' ? /^mnist: every request must be a PNG or JPEG image/ : /not an image Pillow can read/,
      );
      const again = await http(s.inference, 'POST', `/predictions/${ex.model}`, await readFile(ex.input(ex.inputs[0]!)));
      assert.equal(again.status, 200, again.text);
      assertAnswer(again.json(), ex.expected[ex.inputs[0]!], `${ex.model} after the bad request`);
    }
    // The 4 concurrent requests of each model ran as one batch: BaseHandler's HandlerTime metric names all 4.
    await s.stop();
    const metrics = (await readFile(join(s.dir, 'metrics', 'model_metrics.log'), 'utf8')).split('\n');
    const handlerBatches = metrics
      .map((l) => / - HandlerTime\.Milliseconds:[\d.]+\|#ModelName:\w+,Level:Model\|#hostname:[^,]+,\d+,(.*)$/.exec(l)?.[1])
      .filter((ids): ids is string => ids !== undefined)
      .map((ids) => ids.split(',').sort());
    for (const batch of batches)
      assert.ok(
        handlerBatches.some((b) => b.join() === batch.join()),
        `no batch of ${batch.join()} in:\n${metrics.join('\n')}`,
      );
  });
});
