/**
 * The workers' `[METRICS]` lines (handler metrics from `context.metrics`, the worker's PredictionTime, a
 * BaseHandler's HandlerTime) as TorchServe's frontend keeps them: Prometheus metrics labelled with the line's
 * dimensions plus Hostname (WorkerLifeCycle + MetricCache#addAutoDetectMetricBackend), or LogMetric lines in
 * model_metrics.log.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MetricLine } from '../../runtime/metrics.js';
import type { MetricsLog } from './metrics-log.js';
import { helpText, type LogLineTemplate, logLineTemplate, type MetricDef, type MetricType, MODEL_METRICS } from './ts-metrics.js';

interface BackendMetric {
  readonly def: MetricDef;
  readonly metric: Counter | Gauge | Histogram;
  /**
   * Counter totals and gauge values by label values, copied into the metric when a scrape collects: a line costs a
   * map update rather than prom-client's label hashing and checks (a worker prints PredictionTime for every batch).
   */
  readonly series: Map<string, { labels: Record<string, string>; value: number }>;
}

const MAX_TEMPLATES = 1024;

/** Where backend metrics go: a Prometheus registry, or model_metrics.log (metrics_mode=log). */
export type BackendSink = { registry: Registry } | { file: MetricsLog | null };

/**
 * The type of a metric first seen in a line: the line's `|#type:` (TorchServe's workers print it), else what MMS's
 * MetricsStore method implies: `add_counter` prints unit Count, everything else is a gauge.
 */
function lineType(m: MetricLine): MetricType {
  const t = m.type?.toLowerCase();
  if (t === 'counter' || t === 'gauge' || t === 'histogram') return t;
  return m.unit === 'Count' ? 'counter' : 'gauge';
}

/** The request ids as TorchServe writes them: comma-separated, "null" when the line had none. */
const requestIdsText = (m: MetricLine): string =>
  m.requestIds.length === 1 ? m.requestIds[0]! : m.requestIds.length > 0 ? m.requestIds.join(',') : 'null';

export class BackendMetrics {
  readonly #sink: BackendSink;
  readonly #warn: (msg: string) => void;
  /** By name; null: refused (bad name, clashes with a frontend metric), with a warning logged once. */
  readonly #known = new Map<string, BackendMetric | null>();
  readonly #warned = new Set<string>();
  /** Log mode: line templates by metric, dimensions and host (bounded: a handler may vary its dimensions). */
  readonly #templates = new Map<string, LogLineTemplate>();
  #lastTemplate: { dims: MetricLine['dimensions']; name: string; unit: string; host: string; t: LogLineTemplate } | null = null;

  constructor(sink: BackendSink, warn: (msg: string) => void) {
    this.#sink = sink;
    this.#warn = warn;
  }

  /** Records one parsed line. Never throws: a metric Prometheus cannot hold is reported once and dropped. */
  record(m: MetricLine): void {
    if ('file' in this.#sink) {
      this.#log(this.#sink.file, m);
      return;
    }
    let b = this.#known.get(m.name);
    if (b === undefined) b = this.#create(this.#sink.registry, m);
    if (b === null) return;
    const names = b.def.labels;
    const dims = m.dimensions;
    let same = dims.length === names.length - 1;
    for (let i = 0; same && i < dims.length; i++) same = dims[i]![0] === names[i];
    if (!same) {
      this.#warnOnce(
        `labels:${m.name}`,
        `metric ${m.name}: dimensions ${dims.map(([k]) => k).join(',')} differ from ${names.join(',')}; dropped`,
      );
      return;
    }
    const isCounter = b.def.type === 'counter';
    if (isCounter && m.value < 0) {
      this.#warnOnce(`negative:${m.name}`, `counter ${m.name} got a negative value; dropped`);
      return;
    }
    let key = m.hostname;
    for (const [, v] of dims) key += `\u0000${v}`;
    const known = b.series.get(key);
    if (known && b.def.type !== 'histogram') {
      known.value = isCounter ? known.value + m.value : m.value;
      return;
    }
    const labels: Record<string, string> = {};
    for (let i = 0; i < dims.length; i++) labels[names[i]!] = dims[i]![1];
    labels[names[names.length - 1]!] = m.hostname;
    if (b.metric instanceof Histogram) b.metric.observe(labels, m.value);
    else b.series.set(key, { labels, value: m.value });
  }

  #create(registry: Registry, m: MetricLine): BackendMetric | null {
    const def: MetricDef = MODEL_METRICS[m.name] ?? {
      type: lineType(m),
      unit: m.unit,
      labels: [...m.dimensions.map(([k]) => k), 'Hostname'],
    };
    const series: BackendMetric['series'] = new Map();
    const config = { name: m.name, help: helpText(def.type, def.unit), labelNames: def.labels, registers: [registry] };
    let b: BackendMetric | null;
    try {
      const metric =
        def.type === 'counter'
          ? new Counter({
              ...config,
              collect(this: Counter) {
                this.reset();
                for (const s of series.values()) this.inc(s.labels, s.value);
              },
            })
          : def.type === 'gauge'
            ? new Gauge({
                ...config,
                collect(this: Gauge) {
                  for (const s of series.values()) this.set(s.labels, s.value);
                },
              })
            : new Histogram(config);
      b = { def, metric, series };
    } catch (err) {
      // an invalid Prometheus name or label, or the name of a frontend metric
      this.#warnOnce(`create:${m.name}`, `metric ${m.name} cannot be kept: ${(err as Error).message}`);
      b = null;
    }
    this.#known.set(m.name, b);
    return b;
  }

  #log(file: MetricsLog | null, m: MetricLine): void {
    if (file === null) return;
    // a worker prints the same few series for every batch: their line templates are made once, and the last one is
    // found without building and hashing a key (parsed dimensions are shared, metrics.ts)
    const last = this.#lastTemplate;
    if (last !== null && last.dims === m.dimensions && last.name === m.name && last.unit === m.unit && last.host === m.hostname) {
      file.add(last.t, m.value, requestIdsText(m));
      return;
    }
    const key = `${m.name}.${m.unit}|${m.dimensionsText}|${m.hostname}`;
    let t = this.#templates.get(key);
    if (t === undefined) {
      const def: MetricDef = MODEL_METRICS[m.name] ?? {
        type: lineType(m),
        unit: m.unit,
        labels: [...m.dimensions.map(([k]) => k), 'Hostname'],
      };
      t = logLineTemplate(m.name, def, [...m.dimensions.map(([, v]) => v), m.hostname]);
      if (this.#templates.size >= MAX_TEMPLATES) this.#templates.clear();
      this.#templates.set(key, t);
    }
    this.#lastTemplate = { dims: m.dimensions, name: m.name, unit: m.unit, host: m.hostname, t };
    file.add(t, m.value, requestIdsText(m));
  }

  #warnOnce(key: string, msg: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#warn(msg);
  }
}
