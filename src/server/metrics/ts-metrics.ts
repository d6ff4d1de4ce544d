/**
 * TorchServe's metric names, types, units and labels (its ts/configs/metrics.yaml; the frontend records them in
 * NettyUtils, InferenceRequestHandler, RestJob, WorkerThread and MetricCollector). The one home of these facts:
 * the Prometheus registry, the log lines and docs/metrics.md follow this table.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDef {
  readonly type: MetricType;
  /** TorchServe's unit word, shown in the help text and in log lines (`Name.Unit:value`). */
  readonly unit: string;
  /** Label names in TorchServe's order; the last one is the host name. */
  readonly labels: readonly string[];
}

const HOST = ['Level', 'Hostname'] as const;
const MODEL = ['model_name', 'model_version', 'hostname'] as const;

/** The frontend's metrics (metrics.yaml `ts_metrics`), without the GPU ones (no GPU support here). */
export const FRONTEND_METRICS = {
  Requests2XX: { type: 'counter', unit: 'Count', labels: HOST },
  Requests4XX: { type: 'counter', unit: 'Count', labels: HOST },
  Requests5XX: { type: 'counter', unit: 'Count', labels: HOST },
  ts_inference_requests_total: { type: 'counter', unit: 'Count', labels: MODEL },
  ts_inference_latency_microseconds: { type: 'counter', unit: 'Microseconds', labels: MODEL },
  ts_queue_latency_microseconds: { type: 'counter', unit: 'Microseconds', labels: MODEL },
  QueueTime: { type: 'gauge', unit: 'Milliseconds', labels: HOST },
  WorkerThreadTime: { type: 'gauge', unit: 'Milliseconds', labels: HOST },
  WorkerLoadTime: { type: 'gauge', unit: 'Milliseconds', labels: ['WorkerName', ...HOST] },
  CPUUtilization: { type: 'gauge', unit: 'Percent', labels: HOST },
  MemoryUsed: { type: 'gauge', unit: 'Megabytes', labels: HOST },
  MemoryAvailable: { type: 'gauge', unit: 'Megabytes', labels: HOST },
  MemoryUtilization: { type: 'gauge', unit: 'Percent', labels: HOST },
  DiskUsage: { type: 'gauge', unit: 'Gigabytes', labels: HOST },
  DiskUtilization: { type: 'gauge', unit: 'Percent', labels: HOST },
  DiskAvailable: { type: 'gauge', unit: 'Gigabytes', labels: HOST },
} as const satisfies Record<string, MetricDef>;

export type FrontendMetric = keyof typeof FRONTEND_METRICS;

/**
 * The model metrics metrics.yaml declares (`model_metrics`), as the workers print them; the backend adds the
 * Hostname label. Other metrics a handler prints are registered when first seen (TorchServe's auto-detection).
 */
export const MODEL_METRICS: Readonly<Record<string, MetricDef>> = {
  HandlerTime: { type: 'gauge', unit: 'ms', labels: ['ModelName', 'Level', 'Hostname'] },
  PredictionTime: { type: 'gauge', unit: 'ms', labels: ['ModelName', 'Level', 'Hostname'] },
};

/** The help text TorchServe registers every metric with. */
export const helpText = (type: MetricType, unit: string): string => `Torchserve prometheus ${type} metric with unit: ${unit}`;

/** Java's Double.toString (`1.0`, `0.25`, `1.0E7`), as TorchServe prints a metric value in log lines and in Prometheus text. */
export function javaDouble(n: number): string {
  // simpleclient's doubleToGoString spells the infinities as Go does; NaN is the same in both
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'NaN' : n > 0 ? '+Inf' : '-Inf';
  const abs = Math.abs(n);
  if (abs === 0 || (abs >= 1e-3 && abs < 1e7)) return Number.isInteger(n) ? `${n}.0` : String(n);
  const [mantissa, exponent] = n.toExponential().split('e') as [string, string];
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${Number(exponent)}`;
}

/** The fixed parts of a log line for one metric and label values: `head` + value + `tail` + request ids + seconds. */
export interface LogLineTemplate {
  readonly head: string;
  readonly tail: string;
  /** `head` and `tail` as UTF-8, for a writer that copies bytes (metrics-log.ts). */
  readonly headBytes: Uint8Array;
  readonly tailBytes: Uint8Array;
}

/**
 * One metric as TorchServe's LogMetric writes it to ts_metrics.log / model_metrics.log:
 * `Name.Unit:value|#dim:v,...|#hostname:host[,requestID:ids],timestamp:seconds`. `values` follow `labels`, the last
 * one being the host name. A template is made once per series and filled per value (see fillLogLine).
 */
export function logLineTemplate(name: string, def: MetricDef, values: readonly string[]): LogLineTemplate {
  const dims: string[] = [];
  for (let i = 0; i < def.labels.length - 1 && i < values.length - 1; i++) dims.push(`${def.labels[i]}:${values[i]}`);
  const head = `${name}.${def.unit}:`;
  const tail = `|#${dims.join(',')}|#hostname:${values[values.length - 1]}`;
  return { head, tail, headBytes: Buffer.from(head, 'utf8'), tailBytes: Buffer.from(tail, 'utf8') };
}

/** Log mode writes ~7 lines per request: the seconds and the small whole values (counts, ms) are made once. */
const SMALL_VALUES = Array.from({ length: 1024 }, (_, i) => `${i}.0`);
const THOUSANDTHS = Array.from({ length: 1000 }, (_, i) => `.${String(i).padStart(3, '0').replace(/0+$/, '')}`);
let stampSecond = -1;
let stampText = '';

/**
 * javaDouble(value), with the common log-mode values made without converting a double: small whole numbers (counts,
 * ms) from a table, and values with at most three decimals below 1e7 (latencies in µs from whole nanoseconds) from
 * their whole thousandths. Either way the text is the shortest decimal that reads back as the value, as
 * Double.toString prints it there.
 */
export function metricValueText(value: number): string {
  if (value >= 0 && value < 1024 && Number.isInteger(value)) return SMALL_VALUES[value]!;
  if (value >= 1e-3 && value < 1e7) {
    const thousandths = Math.round(value * 1000);
    if (thousandths / 1000 === value) {
      const whole = Math.floor(thousandths / 1000);
      const frac = thousandths - whole * 1000;
      return frac === 0 ? `${whole}.0` : `${whole}${THOUSANDTHS[frac]!}`;
    }
  }
  return javaDouble(value);
}

/** What comes before a line's request ids, when it has them. */
export const REQUEST_IDS = ',requestID:';

/** The end of a line: its time in whole seconds. */
export const secondsText = (second: number): string => `,timestamp:${second}`;

/** A log line from its template, the value, the request ids if the line has them, and its time (ms since the epoch). */
export function fillLogLine(t: LogLineTemplate, value: number, requestIds?: string, nowMs = Date.now()): string {
  const ids = requestIds === undefined ? '' : `${REQUEST_IDS}${requestIds}`;
  const second = Math.floor(nowMs / 1000);
  if (second !== stampSecond) {
    stampSecond = second;
    stampText = secondsText(second);
  }
  return `${t.head}${metricValueText(value)}${t.tail}${ids}${stampText}`;
}

/** One metric family with its samples, as prom-client's `metric.get()` gives it. */
export interface MetricFamily {
  name: string;
  help: string;
  /** `counter`, `gauge`, ... at run time (prom-client's typings declare a numeric enum). */
  type: unknown;
  values: ReadonlyArray<{ value: number; labels: Readonly<Record<string, string | number | undefined>>; metricName?: string }>;
}

const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/**
 * Families in the text format 0.0.4 exactly as TorchServe's Prometheus client (simpleclient 0.9, TextFormat.write004)
 * writes it: every label followed by a comma (`{Level="Host",Hostname="h",}`), values as Java doubles (`8.0`,
 * `1.0E7`), no blank lines. Clients matching TorchServe's text (its own API tests do) see the same.
 */
export function formatExposition(families: readonly MetricFamily[]): string {
  let out = '';
  for (const f of families) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${String(f.type)}\n`;
    for (const v of f.values) {
      let labels = '';
      for (const [k, raw] of Object.entries(v.labels)) {
        if (raw === undefined) continue;
        // a histogram's bucket bound is a double in Java too
        const value = typeof raw === 'number' ? javaDouble(raw) : raw;
        labels += `${k}="${escapeLabel(value)}",`;
      }
      out += `${v.metricName ?? f.name}${labels === '' ? '' : `{${labels}}`} ${javaDouble(v.value)}\n`;
    }
  }
  return out;
}
