/**
 * Decoding a worker's stdout and stderr: lines (capped, CR stripped), the start handshake ("[PID] n" and
 * "MMS worker started."), [METRICS] lines (including one glued to a handler's unterminated output) and the
 * rest, which is log text (docs/worker-protocol.md §1, §4); and the metric lines a successful PREDICT reply carries.
 */
import {
  isWellFormedMetricLine,
  METRICS_PREFIX,
  type MetricLine,
  type PredictionTimeSeries,
  parseMetricLine,
  parseShortPredictionTime,
  SHORT_PREDICTION_TIME,
} from './metrics.js';
import type { WorkerReply } from './protocol.js';

export type OutputStream = 'stdout' | 'stderr';

/** Where the lines of one worker go. */
export interface OutputHandlers {
  /** True while the start handshake is awaited: only then do `[PID]` and "started" lines count as such. */
  inHandshake(): boolean;
  /** The `[PID] n` line: the pid of the process that serves (a forking worker's child). */
  onPid(pid: number): void;
  /** The "worker started" line: the worker listens on its socket. */
  onStarted(): void;
  /** Parsed [METRICS] lines; undefined drops them. */
  onMetric: ((metric: MetricLine) => void) | undefined;
  /** What the worker's short PredictionTime lines leave out (its model, the host): see routeReplyLines. */
  predictionTime?: PredictionTimeSeries;
  /** Every other line. */
  log(stream: OutputStream, line: string): void;
}

/** A "line" longer than this is logged in pieces rather than buffered without bound. */
const MAX_LINE_CHARS = 64 * 1024;

const STARTED_LINES = new Set(['MMS worker started.', 'MXNet worker started.']);
const PID_LINE = /^\[PID\]\s?(\d+)$/;

/** Splits a stream into lines (a final unterminated one included) and hands each to onLine. */
export function readLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    while (partial.length > MAX_LINE_CHARS) {
      lines.push(partial.slice(0, MAX_LINE_CHARS));
      partial = partial.slice(MAX_LINE_CHARS);
    }
    for (const line of lines) onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  });
  stream.on('end', () => {
    if (partial) onLine(partial);
    partial = '';
  });
}

/** Routes one line of worker output to the handshake, the metrics or the log. */
export function routeLine(stream: OutputStream, line: string, h: OutputHandlers): void {
  // Only the worker's own handshake counts: during LOAD the handler's output may say anything.
  if (stream === 'stdout' && h.inHandshake()) {
    const pid = PID_LINE.exec(line);
    if (pid) {
      h.onPid(Number(pid[1]));
      return;
    }
    if (STARTED_LINES.has(line) || line.endsWith('Torch worker started.')) {
      h.onStarted();
      return;
    }
  }
  let at = line.indexOf(METRICS_PREFIX);
  if (at > 0 && stream === 'stdout') {
    // Handler output that bypassed the worker's line tracking (os.write(1, ...), sys.stdout.buffer) can leave a
    // partial line that the worker's next [METRICS] line is glued to: log the text, keep the metric.
    h.log(stream, line.slice(0, at));
    line = line.slice(at);
    at = 0;
  }
  if (at === 0) {
    const onMetric = h.onMetric;
    if (onMetric === undefined) {
      if (isWellFormedMetricLine(line)) return; // dropped, as before, without building the object
    } else {
      const metric = parseMetricLine(line);
      if (metric) {
        onMetric(metric);
        return;
      }
    }
  }
  h.log(stream, line);
}

/** Reads a worker's stdout and stderr to their end, routing every line. */
export function readWorkerOutput(stdout: NodeJS.ReadableStream, stderr: NodeJS.ReadableStream, h: OutputHandlers): void {
  readLines(stdout, (line) => routeLine('stdout', line, h));
  readLines(stderr, (line) => routeLine('stderr', line, h));
}

/**
 * The lines after the first of a successful PREDICT reply's message: its batch's [METRICS] lines, which the worker
 * puts there rather than on stdout when the frontend reads them (MAR_WORKER_METRICS=reply, launchers.ts), and the
 * worker's own PredictionTime in its short form, which this completes with the model, the host and the batch's
 * request ids (the predictions', in batch order). Each other line is routed as a stdout line; the message keeps its
 * first line ("Prediction success").
 */
export function routeReplyLines(reply: WorkerReply, h: OutputHandlers): void {
  const msg = reply.message;
  let at = reply.code === 200 ? msg.indexOf('\n') : -1;
  if (at < 0) return;
  reply.message = msg.slice(0, at);
  while (at < msg.length) {
    const next = msg.indexOf('\n', at + 1);
    const end = next < 0 ? msg.length : next;
    const line = msg.slice(at + 1, end);
    at = end;
    if (line.startsWith(SHORT_PREDICTION_TIME) && h.predictionTime !== undefined) {
      const preds = reply.predictions;
      const ids = preds.length === 1 ? [preds[0]!.requestId] : preds.map((p) => p.requestId);
      const metric = parseShortPredictionTime(line, h.predictionTime, ids);
      if (metric !== null) {
        h.onMetric?.(metric);
        continue;
      }
    }
    routeLine('stdout', line, h);
  }
}
