import { readdir, stat } from 'node:fs/promises';
import { cpus } from 'node:os';
import { basename, join } from 'node:path';
import type { MetricLine } from '../runtime/metrics.js';
import type { ModelRuntimeOptions } from '../runtime/model-runtime.js';
import type { ApiContext } from './api-context.js';
import { TokenAuthorization } from './auth.js';
import type { ServerConfig } from './config.js';
import { isSameAddress } from './config.js';
import { dialectNamed } from './dialects/index.js';
import type { GrpcHost } from './grpc/host.js';
import { HttpListener } from './http-server.js';
import { LogFile } from './log-file.js';
import { ServerLogger } from './logger.js';
import type { ServerMetrics } from './metrics/server-metrics.js';
import { workerMetrics } from './metrics/worker-metrics.js';
import { ModelRegistry } from './model-registry.js';
import type { StartupModels } from './readiness.js';
import { restoreSnapshot, SnapshotWriter, snapshotProperties } from './snapshot.js';

export interface ModelServerOptions {
  config: ServerConfig;
  /** Server log lines in the text log format (default: stdout with a timestamp); log_format=json writes JSON lines to stdout. */
  log?: (msg: string) => void;
  /** Passed to every ModelRuntime (tests shorten backoff). */
  runtimeOptions?: Partial<Omit<ModelRuntimeOptions, 'model'>>;
}

export interface ListenerInfo {
  api: 'inference' | 'management' | 'both' | 'metrics' | 'gRPC inference' | 'gRPC management';
  url: string;
}

/** Startup models loaded at once: extraction and worker start overlap, without starting hundreds together. */
const STARTUP_LOAD_CONCURRENCY = Math.min(8, Math.max(4, cpus().length));

/** `resnet-18.mar` -> `resnet_18` (MMS: file name without extension, non-word characters -> `_`). */
export function defaultModelName(url: string): string {
  const base = basename(url.replace(/\/+$/, '')).replace(/(\.tar\.gz|\.tgz|\.mar|\.model|\.zip)$/i, '');
  return base.replace(/\W/g, '_');
}

/**
 * The MMS-compatible model server: the listeners, the model registry, startup models and graceful shutdown.
 * `start()` resolves once every listener is bound and startup models were loaded (failures are only logged,
 * like MMS); `stop()` stops accepting, lets in-flight requests finish, stops the workers and releases the models.
 */
export class ModelServer {
  readonly config: ServerConfig;
  readonly registry: ModelRegistry;
  /** Every log line of the server, in the configured log_format (logger.ts). */
  readonly logger: ServerLogger;
  readonly #log: (msg: string) => void;
  readonly #startupModels = new Set<string>();
  readonly #listeners: HttpListener[] = [];
  /** gRPC listeners (grpc_inference_port, grpc_management_port). */
  #grpc: GrpcHost[] = [];
  /** The models loaded at start, for readiness (filled before any listener opens). */
  readonly #startup: StartupModels = { entries: [], failed: [] };
  #metrics: LogFile | null = null;
  /** TorchServe's metrics (metrics_address set; made at the start of start()), else null. */
  #tsMetrics: ServerMetrics | null = null;
  /** Config snapshots (snapshotsEnabled), from the end of start() on. */
  #snapshots: SnapshotWriter | null = null;
  #auth: TokenAuthorization | null = null;
  #stopping: Promise<void> | null = null;

  constructor(options: ModelServerOptions) {
    this.config = options.config;
    const c = this.config;
    const logger = new ServerLogger({ format: c.logFormat, log: options.log });
    this.logger = logger;
    this.#log = logger.info;
    // Only with a consumer (TorchServe metrics, or MMS's metrics_location): else the workers' metric lines are dropped unparsed (hot path).
    const metrics = workerMetrics(c);
    const onMetric =
      metrics === false
        ? {}
        : c.metricsAddress !== null
          ? { onMetric: (m: MetricLine) => this.#tsMetrics?.workerMetric(m), metricsSampled: metrics === 'sampled' }
          : { onMetric: (m: MetricLine) => this.#metrics?.write(m.raw) };
    const given = options.runtimeOptions;
    this.registry = new ModelRegistry({
      config: this.config,
      log: this.#log,
      runtimeOptions: { ...onMetric, ...given },
      // worker lines and pool events through the logger (unless the caller routes them), metrics hooks
      runtimeHooks: (name: string, version: string) => ({
        log: given?.log ?? logger.worker(name, version),
        onEvent: given?.onEvent ?? logger.workerEvent(name, version),
        ...(this.#tsMetrics ? { timings: this.#tsMetrics.timings(name, version) } : {}),
      }),
    });
  }

  get startupModels(): ReadonlySet<string> {
    return this.#startupModels;
  }

  /** Bound listeners (after start). */
  get listeners(): ListenerInfo[] {
    const http: ListenerInfo[] = this.#listeners.map((l) => ({
      api: l.apis.metrics ? 'metrics' : l.apis.inference && l.apis.management ? 'both' : l.apis.inference ? 'inference' : 'management',
      url: l.url,
    }));
    return [...http, ...this.#grpc.map((g): ListenerInfo => ({ api: `gRPC ${g.api}`, url: g.url }))];
  }

  async start(): Promise<ListenerInfo[]> {
    const c = this.config;
    const dialect = dialectNamed(c.dialect);
    // prom-client and grpc-js load only when configured: off the start path otherwise (cold start)
    if (c.metricsAddress !== null) {
      const { ServerMetrics } = await import('./metrics/server-metrics.js');
      this.#tsMetrics = new ServerMetrics({ mode: c.metricsMode, logDir: c.metricsLogDir, log: this.#log });
    }
    for (const key of c.ignoredKeys) this.#log(`Config key ${key} is not used by model-server; ignored`);
    for (const warning of c.startupWarnings) this.#log(warning);
    if (c.tokenAuthorization) {
      this.#auth = await TokenAuthorization.create({ keyFile: c.keyFile, expirationMinutes: c.tokenExpirationMinutes });
      this.#log(`Token authorization enabled: requests need "Authorization: Bearer <key>"; keys in ${c.keyFile}`);
    }
    // TorchServe's metrics own ts_metrics.log / model_metrics.log; MMS's model_metrics.log only without them
    this.#tsMetrics?.open();
    if (c.metricsLocation !== null && this.#tsMetrics === null) {
      this.#metrics = LogFile.open(c.metricsLocation, 'model_metrics.log', 'metrics_location', this.#log);
      this.#log(`Model metrics log: ${this.#metrics.path}`);
    }
    if (c.logLocation !== null) this.logger.openAccessLog(c.logLocation);
    const api: ApiContext = {
      config: this.config,
      registry: this.registry,
      startupModels: this.#startupModels,
      log: this.#log,
      logger: this.logger,
      metrics: this.#tsMetrics,
      dialect,
      auth: this.#auth,
      startup: this.#startup,
    };
    if (isSameAddress(c.inferenceAddress, c.managementAddress)) {
      this.#listeners.push(new HttpListener(api, c.inferenceAddress, { inference: true, management: true }));
    } else {
      this.#listeners.push(new HttpListener(api, c.inferenceAddress, { inference: true, management: false }));
      this.#listeners.push(new HttpListener(api, c.managementAddress, { inference: false, management: true }));
    }
    if (c.metricsAddress !== null) {
      this.#listeners.push(new HttpListener(api, c.metricsAddress, { inference: false, management: false, metrics: true }));
    }
    this.#grpc = c.grpcInference !== null || c.grpcManagement !== null ? (await import('./grpc/services.js')).grpcHosts(api) : [];
    try {
      // TorchServe: a model_snapshot replaces load_models
      if (c.modelSnapshot !== null) this.#startup.failed.push(...(await restoreSnapshot(this.registry, c, this.#log)));
      else await this.#loadStartupModels();
      this.#startup.entries = this.registry.entries();
      for (const l of this.#listeners) {
        const url = await l.listen();
        if (l.apis.inference) this.#log(`Inference API bind to: ${url}`);
        if (l.apis.management) this.#log(`Management API bind to: ${url}`);
        if (l.apis.metrics) this.#log(`Metrics API bind to: ${url}`);
      }
      for (const g of this.#grpc) this.#log(`gRPC ${g.api} API bind to: ${await g.listen()}`);
    } catch (err) {
      await this.stop(0);
      throw err;
    }
    this.#log('Model server started.');
    if (c.snapshotsEnabled) {
      const snapshots = new SnapshotWriter({
        dir: c.snapshotDir,
        registry: this.registry,
        properties: snapshotProperties(c),
        log: this.#log,
      });
      this.#snapshots = snapshots;
      await snapshots.save('startup');
      this.registry.watch(() => void snapshots.save('snapshot'));
    }
    return this.listeners;
  }

  /** load_models / --models: `ALL` or `[name=]url` entries; each gets startup workers; failures are logged. */
  async #loadStartupModels(): Promise<void> {
    const c = this.config;
    if (c.loadModels.length === 0) return;
    if (c.modelStore !== null) this.#log(`Loading initial models from model store: ${c.modelStore}`);
    let entries: Array<{ name: string | undefined; url: string }> = [];
    // case-insensitive, as both Java servers (KServe's config says load_models=all)
    if (c.loadModels.length === 1 && c.loadModels[0]!.toUpperCase() === 'ALL') {
      if (c.modelStore === null) {
        this.#log('load_models=ALL needs model_store; no models loaded');
        return;
      }
      for (const f of (await readdir(c.modelStore).catch(() => [] as string[])).sort()) {
        if (f.startsWith('.')) continue;
        const isDir = (await stat(join(c.modelStore, f)).catch(() => null))?.isDirectory() ?? false;
        if (isDir || /\.(mar|model)$/i.test(f)) entries.push({ name: undefined, url: f });
      }
    } else {
      entries = c.loadModels.map((item) => {
        const eq = item.indexOf('=');
        // `name=url`, but not an '=' inside an http(s) query string
        if (eq > 0 && !/^https?:\/\//i.test(item)) return { name: item.slice(0, eq), url: item.slice(eq + 1) };
        return { name: undefined, url: item };
      });
    }
    // Concurrently (bounded): ready time is not the sum of the models' load times. The listeners bind only after
    // this, so /ping answers nothing until every startup model is loaded or has failed.
    const queue = [...entries];
    const loader = async (): Promise<void> => {
      for (let e = queue.shift(); e !== undefined; e = queue.shift()) await this.#loadStartupModel(e.name, e.url);
    };
    await Promise.all(Array.from({ length: Math.min(STARTUP_LOAD_CONCURRENCY, queue.length) }, loader));
  }

  /** One startup model: register, then its startup workers (or its model-config.yaml's); failures are only logged. */
  async #loadStartupModel(name: string | undefined, url: string): Promise<void> {
    try {
      const entry = await this.registry.register({
        url,
        ...(name !== undefined ? { modelName: name } : {}),
        request: { caller: 'startup' },
        loadedAtStartup: true,
      });
      this.#startupModels.add(entry.name);
      const { minWorkers: min, maxWorkers: max } = entry.serving;
      const r = await this.registry.scale(entry.name, min, max, true, entry.version);
      if (r.failed > 0) this.#log(`Model ${entry.name}: ${r.failed} of ${min} worker(s) failed to start: ${r.error?.message ?? ''}`);
      else this.#log(`Model ${entry.name} loaded with ${min} worker(s)`);
    } catch (err) {
      this.#startup.failed.push(name ?? defaultModelName(url));
      this.#log(`Failed to load model ${name ?? defaultModelName(url)} from ${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Graceful stop: no new connections, in-flight requests finish within graceMs, then every runtime closes
   * (in-flight batches finish, workers stop) and every model is released. Idempotent.
   */
  stop(graceMs = this.config.shutdownTimeoutSeconds * 1000): Promise<void> {
    this.#stopping ??= (async () => {
      const start = performance.now();
      // the models as they were when the stop began
      await this.#snapshots?.save('shutdown');
      await Promise.all([...this.#listeners.map((l) => l.close(graceMs)), ...this.#grpc.map((g) => g.close(graceMs))]);
      const left = Math.max(0, graceMs - (performance.now() - start));
      await this.registry.closeAll(left);
      await Promise.all([this.#metrics?.close(), this.#tsMetrics?.close(), this.#auth?.removeKeyFile()]);
      await this.logger.close();
    })();
    return this.#stopping;
  }
}
