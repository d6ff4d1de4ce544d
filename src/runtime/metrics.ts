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

/** Whether parseMetricLine(line) would succeed, without building the result (no consumer for metrics). */
export function isWellFormedMetricLine(line: string): boolean {
  const text = line.startsWith('INFO > ') ? line.slice(7) : line;
  if (!text.startsWith(METRICS_PREFIX)) return false;
  const m = METRIC_RE.exec(text.slice(METRICS_PREFIX.length));
  return m !== null && Number.isFinite(Number(m[3]!.replace(/,/g, ''))) && Number.isFinite(Number(m[7]));
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
  // TorchServe's Java regexes allow an "INFO > " logging prefix.
  const text = line.startsWith('INFO > ') ? line.slice(7) : line;
  if (!text.startsWith(METRICS_PREFIX)) return null;
  const raw = text.slice(METRICS_PREFIX.length);
  const m = METRIC_RE.exec(raw);
  if (!m) return null;
  // (a server with TorchServe's metrics parses one line per batch: the common cases skip the regex replace and split)
  const valueText = m[3]!;
  const value = Number(valueText.includes(',') ? valueText.replace(/,/g, '') : valueText);
  const timestamp = Number(m[7]);
  if (!Number.isFinite(value) || !Number.isFinite(timestamp)) return null;
  const dimensionsText = m[4]!;
  const metric: MetricLine = {
    name: m[1]!,
    unit: m[2]!,
    value,
    dimensions: dimensionsOf(dimensionsText),
    dimensionsText,
    hostname: m[6]!,
    timestamp,
    requestIds: !m[8] ? [] : m[8].includes(',') ? m[8].split(',').filter(Boolean) : [m[8]],
    raw,
  };
  if (m[5] !== undefined) metric.type = m[5];
  return metric;
}

/** Formats a metric line exactly as the MMS MetricsStore prints it (used by the Node worker). */
export function formatMetricLine(m: Omit<MetricLine, 'raw' | 'type' | 'dimensionsText'>): string {
  const dims = m.dimensions.map(([k, v]) => `${k}:${v}`).join(',');
  const ids = m.requestIds.length ? `,${m.requestIds.join(',')}` : '';
  return `${METRICS_PREFIX}${m.name}.${m.unit}:${m.value}|#${dims}|#hostname:${m.hostname},${m.timestamp}${ids}`;
}
