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
import { DEFAULT_MODEL_VERSION, defaultVersionInUse, setDefaultVersionNotFound, versionNotFound } from './version-texts.js';
import { workerSetup } from './worker-setup.js';

export interface RegisterOptions {
  /** `url` as the client sent it: a file/dir in model_store, or an http(s) URL matching allowed_urls. */
  url: string;
  modelName?: string;
  handler?: string;
  runtime?: string;
  /** The register call's serving parameters, a startup model's (none) or a snapshot's; see runtime/serving-options.ts. */
  request: Extract<ServingRequest, { caller: 'register' | 'startup' | 'snapshot' }>;
  loadedAtStartup?: boolean;
  /** TorchServe's startup_timeout (seconds); default the config's default_startup_timeout. */
  startupTimeoutSeconds?: number;
}

/** One registered model: its opened archive and the runtime serving it. */
export interface ModelEntry {
  readonly name: string;
  /** The manifest's modelVersion, or 1.0 (TorchServe's default); one name may have several versions. */
  readonly version: string;
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
  /** Runtime options for one model version (the server's metrics hooks). */
  runtimeHooks?: (name: string, version: string) => Partial<Omit<ModelRuntimeOptions, 'model'>>;
}

/** The versions registered under one name, and the one that answers when a request names no version. */
interface VersionSet {
  /** In registration order. */
  readonly byVersion: Map<string, ModelEntry>;
  defaultVersion: string;
}

/** What changed in the registry (the server writes a config snapshot after each). */
export type RegistryChange = 'register' | 'scale' | 'unregister' | 'set-default';

/**
 * The models the server knows, by name and version (TorchServe's ModelManager; an MMS client only ever sees one
 * version per name). The first version registered under a name is its default until set-default moves it. A name and
 * version is checked right after the archive is opened, with no await in between, so two concurrent registers of one
 * name and version give one 200 and one 409; an entry leaves the table before its runtime closes (new requests get 404
 * at once while in-flight batches finish). Every front end (HTTP, and later KServe and gRPC) resolves models here.
 */
export class ModelRegistry {
  readonly #config: ServerConfig;
  readonly #runtimeOptions: Partial<Omit<ModelRuntimeOptions, 'model'>>;
  readonly #log: (msg: string) => void;
  readonly #models = new Map<string, VersionSet>();
  readonly #closing = new Set<Promise<unknown>>();
  /** Every runtime not yet fully closed (also those already out of the table), for a forced exit. */
  readonly #live = new Set<ModelRuntime>();
  readonly #runtimeHooks: ModelRegistryOptions['runtimeHooks'];
  #onChange: ((change: RegistryChange) => void) | null = null;
  /** Archives a register saved into the model store from a url: deleted on unregister (model-source.ts). */
  readonly #saved = new WeakMap<ModelEntry, () => Promise<void>>();

  constructor(options: ModelRegistryOptions) {
    this.#config = options.config;
    this.#runtimeOptions = options.runtimeOptions ?? {};
    this.#log = options.log ?? (() => {});
    this.#runtimeHooks = options.runtimeHooks;
  }

  /** Calls `onChange` after every later register, scale, unregister and set-default (not for what happened before). */
  watch(onChange: (change: RegistryChange) => void): void {
    this.#onChange = onChange;
  }

  /** The model `name` in `version` (default: its default version), or undefined when either is unknown. */
  get(name: string, version?: string): ModelEntry | undefined {
    const set = this.#models.get(name);
    return set?.byVersion.get(version ?? set.defaultVersion);
  }

  /** As get, but throws the 404s: "Model not found: m", or "Model version: v does not exist for model: m". */
  find(name: string, version?: string): ModelEntry {
    const set = this.#models.get(name);
    if (!set) throw modelNotFound(name);
    const entry = set.byVersion.get(version ?? set.defaultVersion);
    if (!entry) throw versionNotFound(name, version ?? set.defaultVersion);
    return entry;
  }

  /** Every version registered under `name`, in registration order ([] when the name is unknown). */
  versions(name: string): ModelEntry[] {
    return [...(this.#models.get(name)?.byVersion.values() ?? [])];
  }

  /** Whether `entry` is the default version of its name. */
  isDefault(entry: ModelEntry): boolean {
    return this.#models.get(entry.name)?.defaultVersion === entry.version;
  }

  /** Every registered model version, by name then registration order. */
  entries(): ModelEntry[] {
    return [...this.#models.values()].flatMap((set) => [...set.byVersion.values()]);
  }

  /** Makes `version` the one that answers requests naming no version (TorchServe set-default). */
  setDefault(name: string, version: string): ModelEntry {
    const set = this.#models.get(name);
    if (!set) throw modelNotFound(name);
    const entry = set.byVersion.get(version);
    if (!entry) throw setDefaultVersionNotFound(name, version);
    set.defaultVersion = version;
    this.#log(`Default version of model ${name} set to ${version}`);
    this.#changed('set-default');
    return entry;
  }

  /** Registered names, sorted like Java's String order (UTF-16 code units). */
  names(): string[] {
    return [...this.#models.keys()].sort();
  }

  /** Registered names (a name with several versions counts once). */
  get size(): number {
    return this.#models.size;
  }

  /** Sum over model versions: workers running and workers configured (MMS minWorkers), for /ping. */
  health(): { running: number; configured: number } {
    let running = 0;
    let configured = 0;
    for (const e of this.entries()) {
      const h = e.runtime.health();
      running += h.running;
      configured += e.runtime.minWorkers;
    }
    return { running, configured };
  }

  /**
   * Opens the archive and adds the model with no workers (MMS registerModel; a new version of a registered name
   * as TorchServe). Errors are MarErrors with MMS's statuses and messages: 404 for url problems, 400 for bad
   * runtimes/archives, 409 for a name and version already registered (the url is resolved first, as both servers do).
   */
  async register(o: RegisterOptions): Promise<ModelEntry> {
    if (o.runtime !== undefined && !REGISTER_RUNTIMES.includes(o.runtime)) {
      throw new MarError('BAD_REQUEST', `Invalid RuntimeType value: ${o.runtime}`);
    }
    const dialect = dialectNamed(this.#config.dialect);
    // TorchServe resolves (downloads) the url first: re-registering a url whose archive is saved is its 500, not a 409.
    // MMS answers a taken name before a url problem; a taken name with a good url may still add another version.
    let source: Awaited<ReturnType<typeof resolveModelSource>>;
    try {
      source = await resolveModelSource(o.url, this.#config, dialect);
    } catch (err) {
      if (!dialect.urlBeforeNameCheck && o.modelName !== undefined && this.#models.has(o.modelName)) throw conflict(o.modelName);
      throw err;
    }
    let model: OpenedModel;
    try {
      model = await openModel(source.path, {
        hintStyle: 'http',
        checkHandler: dialect.registerChecksHandler,
        limits: this.#config.archiveLimits,
        limitHint: 'config',
        ...this.#config.modelCache,
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
    const version = model.modelVersion ?? DEFAULT_MODEL_VERSION;
    if (this.get(name, version)) {
      await model.release();
      await source.removeSaved?.();
      throw dialect.versionConflict(name, version);
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
        ...this.#runtimeHooks?.(name, version),
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
    const entry: ModelEntry = { name, version, url: o.url, model, runtime, serving, loadedAtStartup: o.loadedAtStartup ?? false };
    if (source.removeSaved) this.#saved.set(entry, source.removeSaved);
    const set = this.#models.get(name);
    if (set) set.byVersion.set(version, entry);
    else this.#models.set(name, { byVersion: new Map([[version, entry]]), defaultVersion: version });
    this.#live.add(runtime);
    this.#log(`Model ${name} version ${version} registered from ${o.url}`);
    this.#changed('register');
    return entry;
  }

  /** MMS updateModel: sets min/max workers of one version (default: the default one); 404 when it is gone. */
  async scale(name: string, minWorkers: number, maxWorkers: number, synchronous: boolean, version?: string): Promise<ScaleResult> {
    const entry = this.find(name, version);
    let pending: Promise<ScaleResult>;
    try {
      pending = entry.runtime.scale(minWorkers, maxWorkers, { synchronous });
      // the new counts are set now: a snapshot taken from here on shows them
      this.#changed('scale');
      return await pending;
    } catch (err) {
      // unregistered while we waited
      if (this.get(name, entry.version) !== entry || entry.runtime.isClosed) throw modelNotFound(name);
      throw err;
    }
  }

  /**
   * Removes one version (default: the default one) at once (new requests get 404), lets in-flight batches finish
   * within unregister_model_timeout, stops the workers and releases the archive. 404 if unknown, 403 for the default
   * version while others remain (TorchServe), 408 on timeout. `entry`: only that entry (a failed register's own).
   */
  async unregister(name: string, target: { version?: string; entry?: ModelEntry } = {}): Promise<void> {
    const set = this.#models.get(name);
    if (!set) throw modelNotFound(name);
    const version = target.version ?? target.entry?.version ?? set.defaultVersion;
    const entry = set.byVersion.get(version);
    if (target.entry !== undefined && entry !== target.entry) throw modelNotFound(name);
    if (!entry) throw versionNotFound(name, version);
    if (version === set.defaultVersion && set.byVersion.size > 1) throw defaultVersionInUse(name);
    set.byVersion.delete(version);
    if (set.byVersion.size === 0) this.#models.delete(name);
    this.#log(`Unregistering model ${name} version ${version}`);
    this.#changed('unregister');
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
    this.#onChange = null;
    const entries = this.entries();
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

  #changed(change: RegistryChange): void {
    try {
      this.#onChange?.(change);
    } catch (err) {
      this.#log(`after ${change}: ${String(err)}`);
    }
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#closing.add(p);
    void p.finally(() => this.#closing.delete(p));
    return p;
  }
}

/** MMS's 409 for a taken name, before the archive (and so its version) is known. */
const conflict = (name: string): MarError => new MarError('MODEL_CONFLICT', `Model ${name} is already registered.`);
