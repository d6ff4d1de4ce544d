import { MarError } from '../errors.js';
import { REGISTER_RUNTIMES } from '../handler/runtimes.js';
import type { OpenedModel } from '../runtime/model.js';
import { openModel } from '../runtime/model.js';
import type { ModelRuntimeOptions, ScaleResult } from '../runtime/model-runtime.js';
import { ModelRuntime } from '../runtime/model-runtime.js';
import { modelConfigNote, resolveServingOptions, type ServingOptions, type ServingRequest } from '../runtime/serving-options.js';
import type { ServerConfig } from './config.js';
import { dialectNamed } from './dialects/index.js';
import { resolveModelSource } from './model-source.js';
import { modelNotFound } from './responses.js';
import { workerSetup } from './worker-setup.js';

export interface RegisterOptions {
  /** `url` as the client sent it: a file/dir in model_store, or an http(s) URL matching allowed_urls. */
  url: string;
  modelName?: string;
  handler?: string;
  runtime?: string;
  /** The register call's serving parameters, or a startup model's (none); see runtime/serving-options.ts. */
  request: Extract<ServingRequest, { caller: 'register' | 'startup' }>;
  loadedAtStartup?: boolean;
  /** TorchServe's startup_timeout (seconds); default the config's default_startup_timeout. */
  startupTimeoutSeconds?: number;
}

/** One registered model: its opened archive and the runtime serving it. */
export interface ModelEntry {
  readonly name: string;
  /** The url as registered (shown by list/describe). */
  readonly url: string;
  readonly model: OpenedModel;
  readonly runtime: ModelRuntime;
  /** The settings it runs with (minWorkers/maxWorkers: the workers to start after registering). */
  readonly serving: ServingOptions;
  readonly loadedAtStartup: boolean;
}

export interface ModelRegistryOptions {
  config: ServerConfig;
  /** Extra runtime options (tests shorten backoff; the server passes its loggers). */
  runtimeOptions?: Partial<Omit<ModelRuntimeOptions, 'model'>>;
  log?: (msg: string) => void;
}

/**
 * The models the server knows. Names are reserved while an archive is being opened, so two concurrent
 * registers of one name give one 200 and one 409, and a name is removed from the table before its runtime
 * closes (new requests get 404 at once while in-flight batches finish).
 */
export class ModelRegistry {
  readonly #config: ServerConfig;
  readonly #runtimeOptions: Partial<Omit<ModelRuntimeOptions, 'model'>>;
  readonly #log: (msg: string) => void;
  readonly #models = new Map<string, ModelEntry>();
  readonly #closing = new Set<Promise<unknown>>();
  /** Every runtime not yet fully closed (also those already out of the table), for a forced exit. */
  readonly #live = new Set<ModelRuntime>();
  /** Archives a register saved into the model store from a url: deleted on unregister (model-source.ts). */
  readonly #saved = new WeakMap<ModelEntry, () => Promise<void>>();

  constructor(options: ModelRegistryOptions) {
    this.#config = options.config;
    this.#runtimeOptions = options.runtimeOptions ?? {};
    this.#log = options.log ?? (() => {});
  }

  get(name: string): ModelEntry | undefined {
    return this.#models.get(name);
  }

  /** Registered names, sorted like Java's String order (UTF-16 code units). */
  names(): string[] {
    return [...this.#models.keys()].sort();
  }

  get size(): number {
    return this.#models.size;
  }

  /** Sum over models: workers running and workers configured (MMS minWorkers), for /ping. */
  health(): { running: number; configured: number } {
    let running = 0;
    let configured = 0;
    for (const e of this.#models.values()) {
      const h = e.runtime.health();
      running += h.running;
      configured += e.runtime.minWorkers;
    }
    return { running, configured };
  }

  /**
   * Opens the archive and adds the model with no workers (MMS registerModel). Errors are MarErrors with
   * MMS's statuses and messages: 404 for url problems, 400 for bad runtimes/archives, 409 for a taken name.
   */
  async register(o: RegisterOptions): Promise<ModelEntry> {
    if (o.runtime !== undefined && !REGISTER_RUNTIMES.includes(o.runtime)) {
      throw new MarError('BAD_REQUEST', `Invalid RuntimeType value: ${o.runtime}`);
    }
    const dialect = dialectNamed(this.#config.dialect);
    // TorchServe resolves (downloads) the url first: re-registering a url whose archive is saved is its 500, not a 409
    if (!dialect.urlBeforeNameCheck && o.modelName !== undefined && this.#models.has(o.modelName)) throw conflict(o.modelName);
    const source = await resolveModelSource(o.url, this.#config, dialect);
    let model: OpenedModel;
    try {
      model = await openModel(source.path, {
        hintStyle: 'http',
        checkHandler: dialect.registerChecksHandler,
        ...(o.modelName !== undefined ? { modelName: o.modelName } : {}),
        ...(o.handler !== undefined ? { handler: o.handler } : {}),
        ...(o.runtime !== undefined ? { runtime: o.runtime } : {}),
      });
    } catch (err) {
      await source.removeSaved?.();
      throw err;
    } finally {
      await source.afterOpen();
    }
    const name = model.name;
    if (this.#models.has(name)) {
      await model.release();
      await source.removeSaved?.();
      throw conflict(name);
    }
    const resolved = resolveServingOptions({ modelConfig: model.config, server: this.#config, request: o.request });
    const serving = resolved.options;
    const note = modelConfigNote(model, resolved.fromModelConfig);
    if (note !== null) this.#log(note);
    let runtime: ModelRuntime;
    try {
      // startup timeout and per-model Python requirements (install_py_dep_per_model)
      const setup = await workerSetup(model, this.#config, serving.python ?? this.#config.python, o.startupTimeoutSeconds, this.#log);
      runtime = new ModelRuntime({
        ...setup,
        jobQueueSize: serving.jobQueueSize,
        python: serving.python,
        decodeInputRequest: serving.decodeInputRequest,
        maxResponseBytes: serving.maxResponseBytes,
        maxRequestBytes: serving.maxRequestBytes,
        ...this.#runtimeOptions,
        model,
        minWorkers: 0,
        maxWorkers: 0,
        batchSize: serving.batchSize,
        maxBatchDelayMs: serving.maxBatchDelayMs,
        responseTimeoutMs: serving.responseTimeoutSeconds * 1000,
      });
    } catch (err) {
      await model.release();
      await source.removeSaved?.();
      throw err;
    }
    const entry: ModelEntry = { name, url: o.url, model, runtime, serving, loadedAtStartup: o.loadedAtStartup ?? false };
    if (source.removeSaved) this.#saved.set(entry, source.removeSaved);
    this.#models.set(name, entry);
    this.#live.add(runtime);
    this.#log(`Model ${name} registered from ${o.url}`);
    return entry;
  }

  /** MMS updateModel: sets min/max workers; 404 when the model is gone. */
  async scale(name: string, minWorkers: number, maxWorkers: number, synchronous: boolean): Promise<ScaleResult> {
    const entry = this.#models.get(name);
    if (!entry) throw modelNotFound(name);
    try {
      return await entry.runtime.scale(minWorkers, maxWorkers, { synchronous });
    } catch (err) {
      // unregistered while we waited
      if (!this.#models.has(name) || entry.runtime.isClosed) throw modelNotFound(name);
      throw err;
    }
  }

  /**
   * Removes the model at once (new requests get 404), lets in-flight batches finish within
   * unregister_model_timeout, stops the workers and releases the archive. 404 if unknown, 408 on timeout.
   */
  async unregister(name: string, entryToRemove?: ModelEntry): Promise<void> {
    const entry = this.#models.get(name);
    if (!entry || (entryToRemove !== undefined && entry !== entryToRemove)) throw modelNotFound(name);
    this.#models.delete(name);
    this.#log(`Unregistering model ${name}`);
    const graceMs = this.#config.unregisterModelTimeoutSeconds * 1000;
    const done = this.#track(
      entry.runtime
        .close({ graceMs })
        .finally(() => {
          this.#live.delete(entry.runtime);
          return Promise.all([entry.model.release(), this.#saved.get(entry)?.()]);
        })
        .catch((err: unknown) => this.#log(`error while unloading ${name}: ${String(err)}`)),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      done.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs + 5000);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) throw new MarError('REQUEST_TIMEOUT', `Timed out while cleaning resources: ${name}`);
    this.#log(`Model ${name} unregistered`);
  }

  /** Shutdown: closes every runtime (in-flight batches finish within graceMs) and releases every archive. */
  async closeAll(graceMs: number): Promise<void> {
    const entries = [...this.#models.values()];
    this.#models.clear();
    await Promise.all(
      entries.map((e) =>
        this.#track(
          e.runtime
            .close({ graceMs })
            .finally(() => {
              this.#live.delete(e.runtime);
              return e.model.release();
            })
            .catch((err: unknown) => this.#log(`error while unloading ${e.name}: ${String(err)}`)),
        ),
      ),
    );
    await Promise.all([...this.#closing]);
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#closing.add(p);
    void p.finally(() => this.#closing.delete(p));
    return p;
  }
}

const conflict = (name: string): MarError => new MarError('MODEL_CONFLICT', `Model ${name} is already registered.`);
