/**
 * The Node worker: the JavaScript counterpart of mms_worker.py, speaking the same OTF protocol on the same
 * command line (`worker.js --sock-type unix --sock-name PATH` | `--sock-type tcp --host H --port N`).
 * It listens, prints `[PID] <pid>` and `MMS worker started.`, serves one connection until EOF, then exits 0.
 * A handler error never ends the process; a failed LOAD is answered (500) and then the process exits 1.
 */

import { unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { RequestDecoder } from '../frame-decoder.js';
import { SHORT_PREDICTION_TIME } from '../metrics.js';
import { encodeReply, type InferenceRequest, type PredictionResult, type WorkerReply } from '../protocol.js';
import { type LoadedHandler, loadHandler } from './handler-loader.js';
import { asksExplain, expectedOutputs, itemsOf, splitOutputs } from './items.js';

const ACCEPT_TIMEOUT_MS = 30_000;
const DECODE = (process.env['MMS_DECODE_INPUT_REQUEST'] ?? 'true') === 'true';
/**
 * Where the [METRICS] lines go (launchers.ts): `0` nowhere (nothing consumes them), `reply` in a successful PREDICT
 * reply's message after its first line (no stdout write per batch), else stdout after each message, as MMS's worker.
 */
const METRICS_MODE = process.env['MAR_WORKER_METRICS'];
const METRICS_ENABLED = METRICS_MODE !== '0';
const METRICS_IN_REPLY = METRICS_MODE === 'reply' || METRICS_MODE === 'reply-sampled';
/** `reply-sampled`: the frontend keeps only a gauge's latest value (Prometheus): PredictionTime goes at most every 100 ms. */
const PREDICTION_TIME_EVERY_MS = METRICS_MODE === 'reply-sampled' ? 100 : 0;
let predictionTimeSentAt = -Infinity;
/** A batch whose lines are longer than this prints them instead (the reply's length fields are capped). */
const MAX_REPLY_METRICS_CHARS = 64 * 1024;

/**
 * The frontend reads stdout line by line ([METRICS] lines): a handler's `process.stdout.write('...')` without a
 * newline must not glue our next line onto its text, so stdout writes are watched and `out` completes the line.
 */
let stdoutMidLine = false;
const rawStdoutWrite = process.stdout.write.bind(process.stdout) as (...args: unknown[]) => boolean;
process.stdout.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
  if (typeof chunk === 'string') {
    if (chunk.length > 0) stdoutMidLine = chunk.charCodeAt(chunk.length - 1) !== 10;
  } else if (chunk instanceof Uint8Array && chunk.length > 0) {
    stdoutMidLine = chunk[chunk.length - 1] !== 10;
  }
  return rawStdoutWrite(chunk, ...rest);
}) as typeof process.stdout.write;

function out(line: string): void {
  process.stdout.write(stdoutMidLine ? `\n${line}\n` : `${line}\n`);
}

function parseArgs(argv: string[]): Map<string, string> {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) args.set(a.slice(2, eq), a.slice(eq + 1));
    else args.set(a.slice(2), argv[++i] ?? '');
  }
  return args;
}

// ---------------------------------------------------------------------------------------------------------------
// Predicting.

function decodeValue(ct: string | null, value: Buffer): unknown {
  if (!DECODE) return value;
  if (ct === 'application/json') {
    try {
      return JSON.parse(value.toString('utf8'));
    } catch {
      return value; // MMS dies here; TorchServe (and we) pass the raw bytes.
    }
  }
  if (ct?.startsWith('text')) return value.toString('utf8');
  return value;
}

function errorReply(batch: InferenceRequest[], code: number, message: string): WorkerReply {
  const body = Buffer.from('error');
  return {
    code,
    message,
    predictions: batch.map((r) => ({ requestId: r.requestId, contentType: null, statusCode: code, reasonPhrase: '', headers: [], body })),
  };
}

function serialise(v: unknown): Buffer | null {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  try {
    const json = JSON.stringify(v, null, 2);
    return json === undefined ? null : Buffer.from(json, 'utf8');
  } catch {
    return null; // BigInt, cycles, throwing toJSON
  }
}

function statusOf(err: unknown): number | null {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof code !== 'number' || !Number.isInteger(code)) return null;
  // A code that cannot go on the wire (int32) is answered 500 with the message, as the Python worker does.
  return code >= -0x80000000 && code <= 0x7fffffff ? code : 500;
}

async function predict(h: LoadedHandler, batch: InferenceRequest[]): Promise<WorkerReply> {
  const { context } = h;
  context.startBatch(batch);
  // item rows (§3.3): their items join `data` one by one; counts stays null when there are none
  let counts: Array<number | null> | null = null;
  const data: unknown[] = [];
  try {
    for (const r of batch) {
      const items = itemsOf(r);
      if (items !== null) {
        counts ??= new Array<number | null>(data.length).fill(null);
        counts.push(items.length);
        data.push(...items);
        continue;
      }
      counts?.push(null);
      const row: Record<string, unknown> = {};
      for (const p of r.params) row[p.name] = decodeValue(p.contentType, p.value);
      data.push(row);
    }
  } catch (err) {
    out(`Prediction failed: ${(err as Error)?.message ?? String(err)}`);
    return errorReply(batch, 503, 'Prediction failed');
  }
  if (counts !== null && asksExplain(batch[0]!)) {
    return errorReply(batch, 501, `The handler of model ${context.modelName} does not implement explain`);
  }
  const started = performance.now();
  let result: unknown;
  try {
    result = await h.handle(data, context);
    // `data.map(async (r) => ...)` is the natural JS way to write a handler: settle the promises it returns.
    if (Array.isArray(result) && result.some((v) => typeof (v as { then?: unknown } | null)?.then === 'function')) {
      result = await Promise.all(result);
    }
  } catch (err) {
    const code = statusOf(err);
    if (code !== null) return errorReply(batch, code, (err as Error).message ?? String(err));
    out(`Prediction failed: ${(err as Error)?.stack ?? String(err)}`);
    if (err instanceof RangeError && /allocation failed|out of memory/i.test(err.message))
      return errorReply(batch, 507, 'Out of resources');
    return errorReply(batch, 503, 'Prediction failed');
  }
  if (!Array.isArray(result)) return errorReply(batch, 503, 'Invalid model predict output');
  const expected = expectedOutputs(batch.length, counts);
  if (expected !== null && result.length !== expected) return errorReply(batch, 503, 'number of batch response mismatched');
  let rows: unknown[] = result;
  if (counts !== null) {
    try {
      rows = splitOutputs(result, counts);
    } catch {
      return errorReply(batch, 503, 'Unsupported model output data type.'); // BigInt, cycles
    }
  }
  const predictions: PredictionResult[] = [];
  for (let i = 0; i < batch.length; i++) {
    const body = serialise(rows[i]);
    if (!body) return errorReply(batch, 503, 'Unsupported model output data type.');
    predictions.push({ requestId: batch[i]!.requestId, ...context.responseParts(i), body });
  }
  const ended = performance.now();
  let message = 'Prediction success';
  if (ended - predictionTimeSentAt >= PREDICTION_TIME_EVERY_MS) {
    predictionTimeSentAt = ended;
    // the short form when the handler recorded nothing (docs/worker-protocol.md §2.3): the frontend knows the rest
    if (METRICS_IN_REPLY && context.metrics.size === 0) {
      message += `\n${SHORT_PREDICTION_TIME}${Math.round((ended - started) * 100)},${Math.floor(Date.now() / 1000)}`;
    } else {
      context.metrics.addTime('PredictionTime', Math.round((ended - started) * 100) / 100);
    }
  }
  return { code: 200, message, predictions };
}

// ---------------------------------------------------------------------------------------------------------------
// Serving one connection.

function serve(conn: Socket): void {
  // The frontend is trusted and enforces max_request_size itself; only the int32 range limits us here.
  const decoder = new RequestDecoder({ maxFrameBytes: 0x7fffffff });
  let handler: LoadedHandler | null = null;
  let chain = Promise.resolve();
  conn.setNoDelay(true);

  const send = (reply: WorkerReply): Promise<void> =>
    new Promise((resolve) => {
      conn.write(encodeReply(reply), () => resolve());
    });
  /** A batch is always answered: a failure of the worker's own code (encoding included) is a 503, not a silence. */
  const answer = async (batch: InferenceRequest[]): Promise<void> => {
    if (!handler) return send(errorReply(batch, 503, 'Model not loaded'));
    let frame: Buffer;
    let carried = false;
    try {
      const reply = await predict(handler, batch);
      if (METRICS_IN_REPLY && reply.code === 200) {
        const lines = handler.context.metrics.lines();
        const text = lines.join('\n');
        carried = lines.length > 0 && text.length <= MAX_REPLY_METRICS_CHARS;
        if (carried) reply.message += `\n${text}`;
      }
      frame = encodeReply(reply);
    } catch (err) {
      out(`Prediction failed in the worker: ${(err as Error)?.stack ?? String(err)}`);
      frame = encodeReply(errorReply(batch, 503, 'Prediction failed'));
    }
    await new Promise<void>((resolve) => conn.write(frame, () => resolve()));
    if (!carried) printMetrics();
  };
  const printMetrics = (): void => {
    if (handler && METRICS_ENABLED) for (const line of handler.context.metrics.lines()) out(line);
  };

  conn.on('data', (chunk: Buffer) => {
    let messages;
    try {
      messages = decoder.push(chunk);
    } catch (err) {
      out(`Invalid message from the frontend: ${(err as Error).message}`);
      process.exit(1);
    }
    for (const msg of messages) {
      chain = chain.then(async () => {
        if (msg.command === 'load') {
          try {
            handler = await loadHandler(msg.load);
            await send({ code: 200, message: `loaded model ${msg.load.modelName}`, predictions: [] });
            printMetrics();
          } catch (err) {
            out(`Failed to load model ${msg.load.modelName}:`);
            out(String((err as Error)?.stack ?? err));
            const message = String((err as Error)?.message ?? err)
              .split('\n')[0]!
              .slice(0, 1000);
            await send({ code: 500, message: `Failed to load model ${msg.load.modelName}: ${message}`, predictions: [] });
            conn.end(() => process.exit(1));
          }
          return;
        }
        await answer(msg.batch);
      });
      // Whatever happened, the next message is still served (a rejected chain would skip every later one).
      chain = chain.catch((err: unknown) => out(`Worker error: ${(err as Error)?.stack ?? String(err)}`));
    }
  });
  conn.on('error', () => {});
  conn.on('close', () => {
    void chain.finally(() => process.exit(0));
  });
}

/**
 * Spawned before its model was on disk (--settings-from-stdin, docs/worker-protocol.md §1.4): the frontend writes
 * one JSON line {"cwd", "env"} on stdin when it adopts us; we take the model's cwd and environment from it.
 */
async function readSettings(): Promise<void> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.includes('\n')) break;
  }
  if (!text.includes('\n')) throw new Error('no settings on stdin (the frontend went away)');
  const settings = JSON.parse(text.slice(0, text.indexOf('\n'))) as { cwd?: unknown; env?: Record<string, string | null> };
  if (typeof settings.cwd !== 'string') throw new Error('settings line without a cwd');
  process.chdir(settings.cwd);
  for (const [name, value] of Object.entries(settings.env ?? {})) {
    if (value === null) delete process.env[name];
    else process.env[name] = value;
  }
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const sockType = args.get('sock-type') ?? 'unix';
  const sockName = args.get('sock-name');
  if (sockType === 'unix' && !sockName) {
    out('usage: worker.js --sock-type unix --sock-name PATH | --sock-type tcp --host 127.0.0.1 --port N');
    process.exit(2);
  }
  const server = createServer({ noDelay: true } as Parameters<typeof createServer>[0]);
  const cleanup = (): void => {
    if (sockType === 'unix' && sockName) {
      try {
        unlinkSync(sockName);
      } catch {
        /* gone */
      }
    }
  };
  process.on('exit', cleanup);
  process.on('SIGTERM', () => process.exit(0));
  // Ctrl-C in a terminal reaches the whole process group: the frontend decides when we stop (it closes the
  // connection and we exit on EOF), so a graceful shutdown can still finish the batch in flight (as mms_worker.py).
  process.on('SIGINT', () => {});

  const acceptMs = Number(args.get('accept-timeout') ?? Number.NaN) * 1000 || ACCEPT_TIMEOUT_MS;
  const acceptTimer = setTimeout(() => {
    out(`Backend worker did not receive connection in: ${acceptMs / 1000}`);
    process.exit(1);
  }, acceptMs);
  const deferred = args.has('settings-from-stdin');

  let served = false;
  server.on('connection', (conn) => {
    // One connection per worker process, as MMS classic and TorchServe.
    if (served) return void conn.destroy();
    served = true;
    clearTimeout(acceptTimer);
    server.close();
    if (!deferred) return void serve(conn);
    readSettings().then(
      () => serve(conn),
      (err: unknown) => {
        out(`Cannot apply the frontend's settings: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  });
  server.on('error', (err) => {
    out(`Worker cannot listen: ${err.message}`);
    process.exit(1);
  });
  server.listen(
    sockType === 'unix' ? { path: sockName! } : { host: args.get('host') ?? '127.0.0.1', port: Number(args.get('port')) },
    () => {
      out(`[PID] ${process.pid}`);
      out('MMS worker started.');
      out(`Node runtime: ${process.versions.node}`);
    },
  );
}

process.on('unhandledRejection', (err) => {
  // A handler's stray promise must not take the worker down.
  out(`Unhandled rejection in handler: ${(err as Error)?.stack ?? String(err)}`);
});

main();
