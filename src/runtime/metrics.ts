/**
 * Parser for the `[METRICS]` lines workers print (docs/worker-protocol.md §1.1, §4):
 *   MMS: [METRICS]<Name>.<Unit>:<value>|#<dim>:<v>,...|#hostname:<host>,<epoch_s>[,<request ids>]
 *   TS:  [METRICS]<Name>.<Unit>:<value>|#<dims>|#type:GAUGE|#hostname:<host>,<epoch_s>[,<request id>]
 * The regex is MMS's Metric.parse, extended with TorchServe's optional `|#type:` segment.
 */

export const METRICS_PREFIX = '[METRICS]';

/** Frontend timings a server turns into TorchServe's WorkerLoadTime and WorkerThreadTime metrics. */
export interface RuntimeTimings {
  /** The worker numbered `port` (its MMS/TorchServe port number) answered LOAD `ms` after it was spawned. */
  workerLoaded(port: number, ms: number): void;
  /** The frontend's own time for one batch, without the worker's: handing it over and answering its jobs (ms). */
  batchOverhead(ms: number): void;
}

export interface MetricLine {
  name: string;
  unit: string;
  value: number;
  /** Dimension pairs in order, e.g. [['ModelName','m'],['Level','Model']]; shared between lines with the same text. */
  dimensions: ReadonlyArray<readonly [string, string]>;
  /** The dimensions as the line spells them (`ModelName:m,Level:Model`): a key for what is made once per series. */
  dimensionsText: string;
  hostname: string;
  /** Seconds since the epoch, as the worker printed it. */
  timestamp: number;
  /** Request ids the metric belongs to (all ids of the batch when the handler gave no index). */
  requestIds: string[];
  /** TorchServe's metric type (GAUGE, COUNTER, ...), if present. */
  type?: string;
  /** The line without the prefix. */
  raw: string;
}

const METRIC_RE = /^\s*(\w+)\.(\w+):([0-9\-,.eE+]+)\|#([^|]*)(?:\|#type:([^|]*))?\|#hostname:([^,]+),([^,]+)(?:,(.*))?$/;

export function isMetricLine(line: string): boolean {
  return line.startsWith(METRICS_PREFIX);
}

/** METRIC_RE's groups 1-8 (undefined where the regex leaves a group unmatched), or null when the line does not match. */
type MetricFields = [string, string, string, string, string | undefined, string, string, string | undefined];

const isWordCode = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95; // [0-9A-Za-z_]
// [0-9\-,.eE+]
const isValueCode = (c: number): boolean => (c >= 48 && c <= 57) || c === 45 || c === 44 || c === 46 || c === 101 || c === 69 || c === 43;

/** The index after the run of `ok` characters from `from` in `s`, up to `end`. */
function scan(s: string, from: number, end: number, ok: (c: number) => boolean): number {
  let i = from;
  while (i < end && ok(s.charCodeAt(i))) i++;
  return i;
}

/**
 * METRIC_RE's groups by indexOf and character checks, for the lines workers print every batch (the regex was ~1 µs
 * of a batch-1 request with log metrics). It accepts only the plain form and returns undefined for anything else
 * (leading space, a line break in the request ids): the regex decides those. test/runtime/metrics.test.ts checks
 * that whatever it accepts, the regex reads the same.
 */
export function splitMetricLine(raw: string): MetricFields | undefined {
  const end = raw.length;
  const dot = scan(raw, 0, end, isWordCode);
  if (dot === 0 || raw.charCodeAt(dot) !== 46) return undefined;
  const colon = scan(raw, dot + 1, end, isWordCode);
  if (colon === dot + 1 || raw.charCodeAt(colon) !== 58) return undefined;
  const bar = scan(raw, colon + 1, end, isValueCode);
  if (bar === colon + 1 || !raw.startsWith('|#', bar)) return undefined;
  let next = raw.indexOf('|', bar + 2);
  if (next < 0) return undefined;
  const dims = raw.slice(bar + 2, next);
  let type: string | undefined;
  if (raw.startsWith('|#type:', next)) {
    const after = raw.indexOf('|', next + 7);
    if (after < 0) return undefined;
    type = raw.slice(next + 7, after);
    next = after;
  }
  if (!raw.startsWith('|#hostname:', next)) return undefined;
  const hostAt = next + 11;
  const comma = raw.indexOf(',', hostAt);
  if (comma <= hostAt) return undefined;
  const ts = raw.indexOf(',', comma + 1);
  const tsEnd = ts < 0 ? end : ts;
  if (tsEnd === comma + 1) return undefined;
  const ids = ts < 0 ? undefined : raw.slice(ts + 1);
  if (ids !== undefined && /[\n\r\u2028\u2029]/.test(ids)) return undefined;
  return [
    raw.slice(0, dot),
    raw.slice(dot + 1, colon),
    raw.slice(colon + 1, bar),
    dims,
    type,
    raw.slice(hostAt, comma),
    raw.slice(comma + 1, tsEnd),
    ids,
  ];
}

/** METRIC_RE's groups of `raw` (the line without its prefix) by the regex alone, or null (exported for tests). */
export function metricFieldsByRegex(raw: string): MetricFields | null {
  const m = METRIC_RE.exec(raw);
  return m === null ? null : [m[1]!, m[2]!, m[3]!, m[4]!, m[5], m[6]!, m[7]!, m[8]];
}

/** METRIC_RE's groups of `raw` (the line without its prefix), or null. */
export function metricFields(raw: string): MetricFields | null {
  return splitMetricLine(raw) ?? metricFieldsByRegex(raw);
}

/** The line after its `INFO > ` logging prefix (TorchServe's Java regexes allow one) and `[METRICS]`; null without. */
function metricText(line: string): string | null {
  const text = line.startsWith('INFO > ') ? line.slice(7) : line;
  return text.startsWith(METRICS_PREFIX) ? text.slice(METRICS_PREFIX.length) : null;
}

const numberOf = (valueText: string): number => Number(valueText.includes(',') ? valueText.replace(/,/g, '') : valueText);

/** Whether parseMetricLine(line) would succeed, without building the result (no consumer for metrics). */
export function isWellFormedMetricLine(line: string): boolean {
  const raw = metricText(line);
  const f = raw === null ? null : metricFields(raw);
  return f !== null && Number.isFinite(numberOf(f[2])) && Number.isFinite(Number(f[6]));
}

/** Parsed dimension texts: a worker repeats the same few for every batch (bounded: a handler may vary them). */
const DIMENSIONS = new Map<string, ReadonlyArray<readonly [string, string]>>();
const MAX_DIMENSIONS = 1024;

function dimensionsOf(text: string): ReadonlyArray<readonly [string, string]> {
  let dims = DIMENSIONS.get(text);
  if (dims !== undefined) return dims;
  const pairs: Array<readonly [string, string]> = [];
  for (const part of text.split(',')) {
    if (!part) continue;
    const colon = part.indexOf(':');
    pairs.push(Object.freeze(colon < 0 ? [part, ''] : [part.slice(0, colon), part.slice(colon + 1)]));
  }
  dims = Object.freeze(pairs);
  if (DIMENSIONS.size >= MAX_DIMENSIONS) DIMENSIONS.clear();
  DIMENSIONS.set(text, dims);
  return dims;
}

/** Parses one worker stdout line; null if it is not a well-formed metrics line. */
export function parseMetricLine(line: string): MetricLine | null {
  const raw = metricText(line);
  if (raw === null) return null;
  const f = metricFields(raw);
  if (f === null) return null;
  const [name, unit, valueText, dimensionsText, type, hostname, timestampText, ids] = f;
  const value = numberOf(valueText);
  const timestamp = Number(timestampText);
  if (!Number.isFinite(value) || !Number.isFinite(timestamp)) return null;
  const metric: MetricLine = {
    name,
    unit,
    value,
    dimensions: dimensionsOf(dimensionsText),
    dimensionsText,
    hostname,
    timestamp,
    requestIds: !ids ? [] : ids.includes(',') ? ids.split(',').filter(Boolean) : [ids],
    raw,
  };
  if (type !== undefined) metric.type = type;
  return metric;
}

/**
 * Formats a metric line exactly as the MMS MetricsStore prints it (used by the Node worker), the value spelled as
 * `valueText` says (JavaScript's spelling unless given).
 */
export function formatMetricLine(m: Omit<MetricLine, 'raw' | 'type' | 'dimensionsText'>, valueText = String(m.value)): string {
  const dims = m.dimensions.map(([k, v]) => `${k}:${v}`).join(',');
  const ids = m.requestIds.length ? `,${m.requestIds.join(',')}` : '';
  return `${METRICS_PREFIX}${m.name}.${m.unit}:${valueText}|#${dims}|#hostname:${m.hostname},${m.timestamp}${ids}`;
}

/**
 * The worker's own PredictionTime of a batch whose handler recorded no metric, in the short form a PREDICT reply
 * carries under MAR_WORKER_METRICS=reply (docs/worker-protocol.md §2.3): `[P]<whole hundredths of a ms>,<epoch
 * seconds>`. The rest of its line is known here (the model, the host, the batch's request ids): building, sending and
 * parsing the whole line cost ~10 µs of CPU per batch, the most of any part of log mode.
 */
export const SHORT_PREDICTION_TIME = '[P]';

/** What a worker's short PredictionTime lines share: the dimensions of its model's line, and the host. */
export interface PredictionTimeSeries {
  readonly dimensions: MetricLine['dimensions'];
  readonly dimensionsText: string;
  readonly hostname: string;
}

export function predictionTimeSeries(modelName: string, hostname: string): PredictionTimeSeries {
  const dimensionsText = `ModelName:${modelName},Level:Model`;
  return { dimensions: dimensionsOf(dimensionsText), dimensionsText, hostname };
}

/** A PredictionTime the worker sent short, read as its whole line would be (`raw` is made only when asked for). */
class ShortPredictionTime implements MetricLine {
  readonly name = 'PredictionTime';
  readonly unit = 'Milliseconds';
  readonly dimensions: MetricLine['dimensions'];
  readonly dimensionsText: string;
  readonly hostname: string;
  constructor(
    series: PredictionTimeSeries,
    readonly value: number,
    readonly timestamp: number,
    readonly requestIds: string[],
  ) {
    this.dimensions = series.dimensions;
    this.dimensionsText = series.dimensionsText;
    this.hostname = series.hostname;
  }
  /** The line as the Python worker prints it to stdout, without the prefix (MMS mode's metrics log copies it). */
  get raw(): string {
    // Python's str() of a float: `1.0`, `0.25`
    const value = Number.isInteger(this.value) ? `${this.value}.0` : String(this.value);
    return formatMetricLine(this, value).slice(METRICS_PREFIX.length);
  }
}

/** The metric a short PredictionTime line stands for, or null when `line` is not one (`[P]<digits>,<digits>`). */
export function parseShortPredictionTime(line: string, series: PredictionTimeSeries, requestIds: string[]): MetricLine | null {
  if (!line.startsWith(SHORT_PREDICTION_TIME)) return null;
  const comma = line.indexOf(',', 3);
  const hundredths = digitsValue(line, 3, comma);
  const seconds = digitsValue(line, comma + 1, line.length);
  return hundredths < 0 || seconds < 0 ? null : new ShortPredictionTime(series, hundredths / 100, seconds, requestIds);
}

/** The number that `s[from, to)` spells in 1 to 15 decimal digits, or -1 (a regex cost ~0.3 µs of every batch here). */
function digitsValue(s: string, from: number, to: number): number {
  if (from < 0 || to <= from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
