import { createWriteStream } from 'node:fs';
import { mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isMarError, MarError } from '../errors.js';
import { REGISTER_RUNTIMES } from '../handler/runtimes.js';
import type { OpenedModel } from '../runtime/model.js';
import { openModel } from '../runtime/model.js';
import type { ModelRuntimeOptions, ScaleResult } from '../runtime/model-runtime.js';
import { ModelRuntime } from '../runtime/model-runtime.js';
import { modelConfigNote, resolveServingOptions, type ServingOptions, type ServingRequest } from '../runtime/serving-options.js';
import type { ServerConfig } from './config.js';
import { modelNotFound } from './responses.js';

export interface RegisterOptions {
  /** `url` as the client sent it: a file/dir in model_store, or an http(s) URL matching allowed_urls. */
  url: string;
  modelName?: string;
  handler?: string;
  runtime?: string;
  /** The register call's serving parameters, or a startup model's (none); see runtime/serving-options.ts. */
  request: Extract<ServingRequest, { caller: 'register' | 'startup' }>;
  loadedAtStartup?: boolean;
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
    if (o.modelName !== undefined && this.#models.has(o.modelName)) throw conflict(o.modelName);
    const { path, cleanup } = await this.#resolveUrl(o.url);
    let model: OpenedModel;
    try {
      model = await openModel(path, {
        hintStyle: 'http',
        ...this.#config.modelCache,
        ...(o.modelName !== undefined ? { modelName: o.modelName } : {}),
        ...(o.handler !== undefined ? { handler: o.handler } : {}),
        ...(o.runtime !== undefined ? { runtime: o.runtime } : {}),
      });
    } finally {
      await cleanup();
    }
    const name = model.name;
    if (this.#models.has(name)) {
      await model.release();
      throw conflict(name);
    }
    const resolved = resolveServingOptions({ modelConfig: model.config, server: this.#config, request: o.request });
    const serving = resolved.options;
    const note = modelConfigNote(model, resolved.fromModelConfig);
    if (note !== null) this.#log(note);
    let runtime: ModelRuntime;
    try {
      runtime = new ModelRuntime({
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
      throw err;
    }
    const entry: ModelEntry = { name, url: o.url, model, runtime, serving, loadedAtStartup: o.loadedAtStartup ?? false };
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
          return entry.model.release();
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

  /** MMS ModelArchive#downloadModel, with remote urls off unless allowed_urls matches. */
  async #resolveUrl(url: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
    const none = async (): Promise<void> => {};
    if (/^https?:\/\//i.test(url)) {
      if (!this.#config.allowedUrls.some((re) => re.test(url))) {
        throw new MarError('MODEL_NOT_FOUND', `Given URL ${url} does not match any allowed URL(s)`);
      }
      return this.#download(url);
    }
    if (url.includes('..')) throw new MarError('MODEL_NOT_FOUND', `Relative path is not allowed in url: ${url}`);
    const store = this.#config.modelStore;
    if (store === null) throw new MarError('MODEL_NOT_FOUND', 'Model store has not been configured.');
    const notInStore = (): MarError => new MarError('MODEL_NOT_FOUND', `Model not found in model store: ${url}`);
    const candidate = join(store, url);
    let real: string;
    let realStore: string;
    try {
      [real, realStore] = await Promise.all([realpath(candidate), realpath(store)]);
      await stat(real);
    } catch {
      throw notInStore();
    }
    // symlinks must not lead out of the store, and the store itself is not a model
    if (!real.startsWith(realStore + sep)) {
      if (real === realStore) throw notInStore();
      throw new MarError('MODEL_NOT_FOUND', `Relative path is not allowed in url: ${url}`);
    }
    return { path: real, cleanup: none };
  }

  async #download(url: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new MarError('MODEL_NOT_FOUND', `Invalid model url: ${url}`);
    }
    const dir = await mkdtemp(join(tmpdir(), 'mar-download-'));
    const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
    const file = join(dir, basename(parsed.pathname).replace(/[^\w.-]/g, '_') || 'model.mar');
    try {
      let res: Response;
      try {
        res = await fetch(parsed, { redirect: 'follow' });
      } catch (err) {
        throw new MarError('DOWNLOAD_FAILED', `Failed to download model from: ${url}`, { cause: err });
      }
      if (res.status !== 200 || !res.body) {
        throw new MarError('DOWNLOAD_FAILED', `Failed to download model from: ${url}, code: ${res.status}`);
      }
      try {
        await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(file, { mode: 0o600 }));
      } catch (err) {
        throw new MarError('DOWNLOAD_FAILED', `Failed to download model from: ${url}`, { cause: err });
      }
      return { path: file, cleanup };
    } catch (err) {
      await cleanup();
      throw isMarError(err) ? err : new MarError('DOWNLOAD_FAILED', `Failed to download model from: ${url}`, { cause: err });
    }
  }
}

const conflict = (name: string): MarError => new MarError('MODEL_CONFLICT', `Model ${name} is already registered.`);
