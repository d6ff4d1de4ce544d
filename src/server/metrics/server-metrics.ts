/**
 * TorchServe's metrics for one server: what the frontend records (responses by status class, inference requests and
 * latencies per model and version, queue time, worker load and thread times), the host gauges and the workers'
 * metric lines, kept either in a prom-client registry served on metrics_address (metrics_mode=prometheus) or written
 * as TorchServe's log lines to ts_metrics.log and model_metrics.log (metrics_mode=log).
 *
 * Recording is on the request path, so in Prometheus mode it only adds to plain numbers; the registry's metrics copy
 * them when a scrape collects (a scrape reads, it never waits for a request, and a request never waits for it).
 */
import { hostname } from 'node:os';
import { Counter, Gauge, Registry } from 'prom-client';
import type { MetricLine, RuntimeTimings } from '../../runtime/metrics.js';
import { BackendMetrics } from './backend-metrics.js';
import { type HostMetric, HostMetrics } from './host-metrics.js';
import { MetricsLog } from './metrics-log.js';
import { FRONTEND_METRICS, type FrontendMetric, formatExposition, helpText, type LogLineTemplate, logLineTemplate } from './ts-metrics.js';

export interface ServerMetricsOptions {
  mode: 'prometheus' | 'log';
  /** Directory of ts_metrics.log and model_metrics.log (log mode). */
  logDir: string;
  /** Server log (a metric that cannot be kept, a log file that cannot be written). */
  log: (msg: string) => void;
  /** How often log mode writes the host gauges (TorchServe metric_time_interval; ms). */
  hostIntervalMs?: number;
}

/** The per-request numbers of one model and requested version (TorchServe labels the version a request named, or "default"). */
export class InferenceSeries {
  requests = 0;
  /** Sums in whole nanoseconds (TorchServe's nanoTime resolution), so they add up without binary fractions. */
  latencyNs = 0;
  queueNs = 0;
  readonly labels: readonly string[];
  /** Log mode: this series' line templates, by metric (made on first use). */
  readonly logTemplates = new Map<FrontendMetric, LogLineTemplate>();
  readonly #metrics: ServerMetrics;

  constructor(metrics: ServerMetrics, labels: readonly string[]) {
    this.#metrics = metrics;
    this.labels = labels;
  }

  /** A prediction request for this model was accepted (before it is queued). */
  request(): void {
    this.#metrics.countInference(this);
  }

  /** The worker answered it: `begin` when the request was accepted, `sentAt` when a worker took it, `end` now (performance.now()). */
  answered(begin: number, sentAt: number, end: number): void {
    this.#metrics.answered(this, begin, sentAt > 0 ? sentAt : end, end);
  }
}

/** What the server records and how a scrape reads it; see the module comment. */
export class ServerMetrics {
  readonly mode: 'prometheus' | 'log';
  readonly registry = new Registry();
  readonly hostname = hostname();
  readonly #opts: ServerMetricsOptions;
  readonly #series = new Map<string, Map<string, InferenceSeries>>();
  /** 2xx, 4xx, everything else (TorchServe counts 1xx/3xx as 5XX). */
  readonly #responses = [0, 0, 0];
  #queueTimeMs: number | null = null;
  #workerThreadMs: number | null = null;
  readonly #workerLoadMs = new Map<string, number>();
  readonly #host = new HostMetrics();
  #backend: BackendMetrics;
  /** The host gauges of the current scrape: the seven collect together from one read. */
  #hostReading: { at: number; values: Promise<Map<HostMetric, number>> } | null = null;
  #tsLog: MetricsLog | null = null;
  #modelLog: MetricsLog | null = null;
  #hostTimer: NodeJS.Timeout | null = null;
  readonly #hostTemplates = new Map<FrontendMetric, LogLineTemplate>();

  constructor(opts: ServerMetricsOptions) {
    this.mode = opts.mode;
    this.#opts = opts;
    this.#backend = new BackendMetrics(this.mode === 'prometheus' ? { registry: this.registry } : { file: null }, opts.log);
    if (this.mode === 'prometheus') this.#registerFrontend();
  }

  /** Log mode: opens ts_metrics.log and model_metrics.log and starts the host gauges' timer. Throws before the server listens. */
  open(): void {
    if (this.mode !== 'log') return;
    this.#tsLog = MetricsLog.open(this.#opts.logDir, 'ts_metrics.log', 'metrics_location', this.#opts.log);
    this.#modelLog = MetricsLog.open(this.#opts.logDir, 'model_metrics.log', 'metrics_location', this.#opts.log);
    this.#backend = new BackendMetrics({ file: this.#modelLog }, this.#opts.log);
    this.#hostTimer = setInterval(() => void this.logHostGauges(), this.#opts.hostIntervalMs ?? 60_000);
    this.#hostTimer.unref();
  }

  async close(): Promise<void> {
    if (this.#hostTimer) clearInterval(this.#hostTimer);
    await Promise.all([this.#tsLog?.close(), this.#modelLog?.close()]);
  }

  /** The series of `model` asked for in `version` (undefined: the default one); cached, so a request allocates nothing. */
  inference(model: string, version: string | undefined): InferenceSeries {
    const label = version ?? 'default';
    let byVersion = this.#series.get(model);
    if (!byVersion) {
      byVersion = new Map();
      this.#series.set(model, byVersion);
    }
    let s = byVersion.get(label);
    if (!s) {
      s = new InferenceSeries(this, [model, label, this.hostname]);
      byVersion.set(label, s);
    }
    return s;
  }

  /** Every HTTP response, by status (NettyUtils#sendHttpResponse). */
  countResponse(status: number): void {
    const i = status >= 200 && status < 300 ? 0 : status >= 400 && status < 500 ? 1 : 2;
    if (this.#tsLog === null) {
      this.#responses[i]!++;
      return;
    }
    this.#logHost(i === 0 ? 'Requests2XX' : i === 1 ? 'Requests4XX' : 'Requests5XX', 1);
  }

  /** Runtime hooks for the models' worker pools: WorkerLoadTime (per worker) and WorkerThreadTime. */
  timings(model: string, version: string): RuntimeTimings {
    return {
      workerLoaded: (port, startMs) => {
        // whole milliseconds, as TorchServe's WorkerThread measures it
        const ms = Math.round(startMs);
        // TorchServe's worker name: W-<port>-<model>_<version>
        const worker = `W-${port}-${model}_${version}`;
        if (this.#tsLog)
          this.#tsLog.add(logLineTemplate('WorkerLoadTime', FRONTEND_METRICS.WorkerLoadTime, [worker, 'Host', this.hostname]), ms);
        else this.#workerLoadMs.set(worker, ms);
      },
      batchOverhead: (overheadMs) => {
        const ms = Math.round(overheadMs * 1000) / 1000;
        if (this.#tsLog) this.#logHost('WorkerThreadTime', ms);
        else this.#workerThreadMs = ms;
      },
    };
  }

  /** A worker's [METRICS] line. */
  workerMetric(m: MetricLine): void {
    this.#backend.record(m);
  }

  /**
   * The Prometheus text of every metric, or of the metric families named (`?name[]=`; unknown names are skipped),
   * as TorchServe's metrics API answers (formatExposition). Empty in log mode (nothing is registered), as TorchServe.
   */
  async exposition(names: readonly string[]): Promise<string> {
    if (names.length === 0) return formatExposition(await this.registry.getMetricsAsJSON());
    const metrics = [...new Set(names)].flatMap((name) => this.registry.getSingleMetric(name) ?? []);
    return formatExposition(await Promise.all(metrics.map((m) => m.get())));
  }

  /** @internal InferenceSeries#request */
  countInference(s: InferenceSeries): void {
    if (this.#tsLog) this.#logSeries(s, 'ts_inference_requests_total', 1);
    else s.requests++;
  }

  /** @internal InferenceSeries#answered: RestJob#responseInference's three metrics. */
  answered(s: InferenceSeries, begin: number, sentAt: number, end: number): void {
    const latencyNs = Math.round((end - begin) * 1e6);
    const queueNs = Math.round((sentAt - begin) * 1e6);
    // QueueTime is whole milliseconds (TimeUnit.MILLISECONDS.convert of nanoseconds)
    const queueMs = Math.floor(sentAt - begin);
    if (this.#tsLog) {
      this.#logSeries(s, 'ts_inference_latency_microseconds', latencyNs / 1000);
      this.#logSeries(s, 'ts_queue_latency_microseconds', queueNs / 1000);
      this.#logHost('QueueTime', queueMs);
      return;
    }
    s.latencyNs += latencyNs;
    s.queueNs += queueNs;
    this.#queueTimeMs = queueMs;
  }

  /** One read of the host for the seven gauges of a scrape (a read younger than a second is shared). */
  #hostValues(): Promise<Map<HostMetric, number>> {
    const now = performance.now();
    if (this.#hostReading === null || now - this.#hostReading.at > 1000) {
      this.#hostReading = { at: now, values: this.#host.read().then((r) => new Map(r)) };
    }
    return this.#hostReading.values;
  }

  /** Log mode: a metric labelled Level=Host (its line template made once). */
  #logHost(name: FrontendMetric, value: number): void {
    let t = this.#hostTemplates.get(name);
    if (!t) {
      t = logLineTemplate(name, FRONTEND_METRICS[name], ['Host', this.hostname]);
      this.#hostTemplates.set(name, t);
    }
    this.#tsLog?.add(t, value);
  }

  /** Log mode: a metric of one model series. */
  #logSeries(s: InferenceSeries, name: FrontendMetric, value: number): void {
    let t = s.logTemplates.get(name);
    if (!t) {
      t = logLineTemplate(name, FRONTEND_METRICS[name], s.labels);
      s.logTemplates.set(name, t);
    }
    this.#tsLog?.add(t, value);
  }

  /** Log mode: writes the seven host gauges (every 60 s from open(), as TorchServe's metric_time_interval). */
  async logHostGauges(): Promise<void> {
    for (const [name, value] of await this.#host.read()) this.#logHost(name, value);
  }

  /** The frontend metrics, each copying its numbers from the fields above when a scrape collects. */
  #registerFrontend(): void {
    const host = { Level: 'Host', Hostname: this.hostname };
    const counter = (name: FrontendMetric, fill: (c: Counter) => void): void => {
      const def = FRONTEND_METRICS[name];
      new Counter({
        name,
        help: helpText(def.type, def.unit),
        labelNames: def.labels,
        registers: [this.registry],
        collect(this: Counter) {
          // the totals are kept outside: start from nothing, then add them
          this.reset();
          fill(this);
        },
      });
    };
    const gauge = (name: FrontendMetric, fill: (g: Gauge) => void | Promise<void>): void => {
      const def = FRONTEND_METRICS[name];
      new Gauge({
        name,
        help: helpText(def.type, def.unit),
        labelNames: def.labels,
        registers: [this.registry],
        collect(this: Gauge) {
          return fill(this);
        },
      });
    };
    for (const [i, name] of (['Requests2XX', 'Requests4XX', 'Requests5XX'] as const).entries()) {
      counter(name, (c) => {
        if (this.#responses[i]! > 0) c.inc(host, this.#responses[i]!);
      });
    }
    const perModel = (field: 'requests' | 'latencyNs' | 'queueNs', scale: number) => (c: Counter) => {
      for (const byVersion of this.#series.values()) {
        for (const s of byVersion.values()) {
          c.inc({ model_name: s.labels[0]!, model_version: s.labels[1]!, hostname: s.labels[2]! }, s[field] / scale);
        }
      }
    };
    counter('ts_inference_requests_total', perModel('requests', 1));
    counter('ts_inference_latency_microseconds', perModel('latencyNs', 1000));
    counter('ts_queue_latency_microseconds', perModel('queueNs', 1000));
    gauge('QueueTime', (g) => {
      if (this.#queueTimeMs !== null) g.set(host, this.#queueTimeMs);
    });
    gauge('WorkerThreadTime', (g) => {
      if (this.#workerThreadMs !== null) g.set(host, this.#workerThreadMs);
    });
    gauge('WorkerLoadTime', (g) => {
      for (const [worker, ms] of this.#workerLoadMs) g.set({ WorkerName: worker, ...host }, ms);
    });
    const hostNames: HostMetric[] = [
      'CPUUtilization',
      'MemoryUsed',
      'MemoryAvailable',
      'MemoryUtilization',
      'DiskUsage',
      'DiskUtilization',
      'DiskAvailable',
    ];
    for (const name of hostNames) {
      gauge(name, async (g) => {
        const v = (await this.#hostValues()).get(name);
        if (v !== undefined) g.set(host, v);
      });
    }
  }
}
