/**
 * Property tests of the Python worker's request parser (_mar_worker/codec.py through serve.Worker's real loop),
 * fed by src/runtime/python/tests/codec_harness.py: frames our encoder writes decode to what was written however
 * the socket cuts them; random, truncated and mutated frames end the loop with exit 0 (EOF) or 1 (malformed),
 * never with an unhandled exception or a hang, and never make it ask for more than one field's worth of bytes
 * past what arrived (MAR_WORKER_MAX_FIELD_BYTES).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { delimiter } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import fc from 'fast-check';
import { PYTHON_COMPAT_DIR } from '../../src/runtime/launchers.js';
import { encodeLoad, encodePredict, type WorkerRequest } from '../../src/runtime/protocol.js';
import { packagePath } from '../../src/util/package-info.js';
import { cutsArb, fuzzParams, loadArb, mutate, mutationArb, requestArb, split } from '../helpers/fuzz.js';

const PYTHON = process.env['PYTHON'] ?? 'python3';
const HAS_PYTHON = spawnSync(PYTHON, ['--version']).status === 0;
/** Over the receive scratch buffer (64 KiB), so a big field takes the worker's other allocation path too. */
const CAP = 200_000;
const CASE_TIMEOUT_MS = 10_000;

interface HarnessResult {
  ok: boolean;
  error?: string;
  exit?: number;
  loads?: [string, string, number, string, number][];
  predicts?: { id: string; headers: [string, string][]; params: [string, string, string][] }[][];
  maxExtra?: number;
  cap?: number;
}

/** One long-lived harness process; each case is one line out, one line back. */
class Harness {
  readonly #proc: ChildProcess;
  readonly #waiting: Array<(line: string) => void> = [];
  #stderr = '';

  constructor() {
    this.#proc = spawn(PYTHON, [packagePath('src', 'runtime', 'python', 'tests', 'codec_harness.py')], {
      env: {
        ...process.env,
        PYTHONPATH: [packagePath('src', 'runtime', 'python'), PYTHON_COMPAT_DIR].join(delimiter),
        MAR_WORKER_MAX_FIELD_BYTES: String(CAP),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    createInterface({ input: this.#proc.stdout! }).on('line', (line) => this.#waiting.shift()?.(line));
    this.#proc.stderr!.on('data', (d: Buffer) => {
      this.#stderr += d.toString();
    });
  }

  run(frame: Buffer, cuts: readonly number[]): Promise<HarnessResult> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the parser hung on ${frame.toString('hex')} (cuts ${cuts})\n${this.#stderr}`)),
        CASE_TIMEOUT_MS,
      );
      this.#waiting.push((line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as HarnessResult);
      });
      this.#proc.stdin!.write(`${JSON.stringify({ frame: frame.toString('base64'), cuts })}\n`);
    });
  }

  close(): void {
    this.#proc.stdin!.end();
    this.#proc.kill();
  }
}

const messageArb: fc.Arbitrary<WorkerRequest> = fc.oneof(
  loadArb.map((load) => ({ command: 'load' as const, load })),
  fc.array(requestArb, { maxLength: 4 }).map((batch) => ({ command: 'predict' as const, batch })),
);

function encode(m: WorkerRequest): Buffer {
  return m.command === 'load' ? encodeLoad(m.load) : encodePredict(m.batch);
}

const skip = HAS_PYTHON ? false : `install ${PYTHON} to run this test`;

test('Python parser: messages our encoder writes decode to what was written, cut anywhere', { skip }, async (t) => {
  const h = new Harness();
  t.after(() => h.close());
  await fc.assert(
    fc.asyncProperty(fc.array(messageArb, { minLength: 1, maxLength: 3 }), cutsArb, async (messages, cuts) => {
      const r = await h.run(Buffer.concat(messages.map(encode)), cuts);
      assert.ok(r.ok, r.error);
      assert.equal(r.exit, 0, 'EOF after the last message is a clean end');
      const loads = messages.flatMap((m) => (m.command === 'load' ? [m.load] : []));
      assert.deepEqual(
        r.loads,
        loads.map((l) => [l.modelName, l.modelPath, Math.max(1, l.batchSize), l.handler, l.gpuId]),
      );
      const predicts = messages.flatMap((m) => (m.command === 'predict' ? [m.batch] : []));
      assert.deepEqual(
        r.predicts,
        predicts.map((batch) =>
          batch.map((q) => ({
            id: Buffer.from(q.requestId).toString('hex'),
            headers: q.headers,
            params: q.params.map((p) => [p.name, p.contentType ?? '', p.value.toString('hex')]),
          })),
        ),
      );
    }),
    fuzzParams(200),
  );
});

test('Python parser: random, truncated and mutated frames end with exit 0 or 1, no crash, no hang, no allocation past the field cap', {
  skip,
}, async (t) => {
  const h = new Harness();
  t.after(() => h.close());
  const input = fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.array(messageArb, { minLength: 1, maxLength: 2 }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
        .map(([ms, muts]) => mutate(Buffer.concat(ms.map(encode)), muts)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from([a.length % 2 ? 0x49 : 0x4c, ...a])) },
  );
  await fc.assert(
    fc.asyncProperty(input, cutsArb, async (frame, cuts) => {
      const r = await h.run(
        frame,
        split(frame, cuts).map((c) => c.length),
      );
      assert.ok(r.ok, r.error);
      assert.ok(r.exit === 0 || r.exit === 1, `exit ${r.exit}`);
      assert.equal(r.cap, CAP);
      assert.ok(r.maxExtra! <= CAP + 8, `asked for ${r.maxExtra} bytes past what it had (cap ${CAP})`);
    }),
    fuzzParams(400),
  );
});
