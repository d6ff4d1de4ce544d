/**
 * TorchServe's config snapshots (its SnapshotManager and FSSnapshotSerializer): after every management change the
 * server writes `<log dir>/config/<yyyyMMddHHmmssSSS>-snapshot.cfg` (also `-startup.cfg` and `-shutdown.cfg`), a
 * config.properties holding the server's configuration plus `model_snapshot`, the JSON of every model version with
 * its workers, batching and timeout. A server started from that file, or with that `model_snapshot` in its
 * config.properties, registers exactly those models again.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describeFsError, isMarError, MarError } from '../errors.js';
import type { ServerConfig } from './config.js';
import { parseProperties } from './config.js';
import type { ModelEntry, ModelRegistry } from './model-registry.js';
import { toMmsJson } from './responses.js';

/** One model version in a snapshot: TorchServe's Model#getModelState. */
export interface SnapshotModelState {
  defaultVersion: boolean;
  /** The archive, relative to the model store. */
  marName: string;
  minWorkers: number;
  maxWorkers: number;
  batchSize: number;
  maxBatchDelay: number;
  /** Seconds. */
  responseTimeout: number;
  runtimeType: string;
}

/** TorchServe's Snapshot, as its Gson writes it. */
export interface Snapshot {
  name: string;
  modelCount: number;
  created: number;
  /** Model name -> version -> state. */
  models: Record<string, Record<string, SnapshotModelState>>;
}

export type SnapshotKind = 'startup' | 'snapshot' | 'shutdown';

/** `20240131235959123-snapshot.cfg`: local time to the millisecond, as TorchServe's SimpleDateFormat. */
export function snapshotFileName(kind: SnapshotKind, d = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const stamp =
    `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}` +
    `${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}${p(d.getMilliseconds(), 3)}`;
  return `${stamp}-${kind}.cfg`;
}

/** The newest snapshot file in `dir` by its time stamp (TorchServe starts from it without --ts-config), or null. */
export function lastSnapshotFile(dir: string): string | null {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  const stamped = names.filter((n) => /^\d{17}-\w+\.cfg$/.test(n)).sort();
  return stamped.length === 0 ? null : join(dir, stamped[stamped.length - 1]!);
}

/** The archive's name as a snapshot records it: the url as registered, or the last path part of an http(s) url. */
function marName(e: ModelEntry): string {
  if (!/^https?:\/\//i.test(e.url)) return e.url;
  try {
    return basename(new URL(e.url).pathname);
  } catch {
    return basename(e.url);
  }
}

/** The registry as a snapshot: every model version with its current settings (SnapshotManager#saveSnapshot). */
export function takeSnapshot(registry: ModelRegistry, name: string): Snapshot {
  const models: Snapshot['models'] = {};
  let modelCount = 0;
  for (const e of registry.entries()) {
    models[e.name] ??= {};
    models[e.name]![e.version] = {
      defaultVersion: registry.isDefault(e),
      marName: marName(e),
      minWorkers: e.runtime.minWorkers,
      maxWorkers: e.runtime.maxWorkers,
      batchSize: e.runtime.batchSize,
      maxBatchDelay: e.runtime.maxBatchDelayMs,
      responseTimeout: Math.round(e.runtime.responseTimeoutMs / 1000),
      runtimeType: e.model.runtime,
    };
    modelCount++;
  }
  return { name, modelCount, created: Date.now(), models };
}

/** Java Properties#store's escaping (store(Writer): non-ASCII is written as is). */
function escapeProperty(s: string, isKey: boolean): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === ' ') out += isKey || i === 0 ? '\\ ' : ' ';
    else if (c === '\t') out += '\\t';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\f') out += '\\f';
    else if (c === '\\' || c === '=' || c === ':' || c === '#' || c === '!') out += `\\${c}`;
    else out += c;
  }
  return out;
}

/** `Mon Jan 01 12:00:00 UTC 2024`: java.util.Date#toString, in UTC. */
function javaDate(d: Date): string {
  // toUTCString: "Mon, 01 Jan 2024 12:00:00 GMT"
  const [day, date, mon, year, time] = d.toUTCString().replace(',', '').split(' ') as [string, string, string, string, string];
  return `${day} ${mon} ${date} ${time} UTC ${year}`;
}

/** A snapshot file: `properties` (sorted) plus model_snapshot, in Java's Properties#store format. */
export function formatSnapshotFile(properties: ReadonlyMap<string, string>, snapshot: Snapshot): string {
  const props = new Map(properties);
  // Gson's pretty printing, as TorchServe's serializer
  props.set('model_snapshot', toMmsJson(snapshot).trimEnd());
  const lines = ['#Saving snapshot', `#${javaDate(new Date(snapshot.created))}`];
  for (const key of [...props.keys()].sort()) lines.push(`${escapeProperty(key, true)}=${escapeProperty(props.get(key)!, false)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The configuration a snapshot file carries (ConfigManager#getConfiguration): the config file's properties, the
 * model store actually used, and the file's own path as `tsConfigFile` (TorchServe's key).
 */
export function snapshotProperties(config: ServerConfig): Map<string, string> {
  let props = new Map<string, string>();
  try {
    if (config.configFile !== null) props = parseProperties(readFileSync(config.configFile, 'utf8'));
  } catch {
    // read at start already; gone since: the snapshot still has the models
  }
  props.delete('model_snapshot');
  if (config.modelStore !== null) props.set('model_store', config.modelStore);
  if (config.configFile !== null) props.set('tsConfigFile', config.configFile);
  return props;
}

/**
 * Writes snapshot files one at a time, each of the registry as it is when its write starts; a `snapshot` asked for
 * while another waits is the same write. A file is written beside its name and renamed into place. Failures are
 * logged: serving goes on (TorchServe logs them too).
 */
export class SnapshotWriter {
  readonly dir: string;
  readonly #registry: ModelRegistry;
  readonly #properties: ReadonlyMap<string, string>;
  readonly #log: (msg: string) => void;
  #chain: Promise<void> = Promise.resolve();
  #waiting: Promise<void> | null = null;

  constructor(options: { dir: string; registry: ModelRegistry; properties: ReadonlyMap<string, string>; log: (msg: string) => void }) {
    this.dir = options.dir;
    this.#registry = options.registry;
    this.#properties = options.properties;
    this.#log = options.log;
  }

  /** Queues a snapshot; resolves once it is written (or its failure logged). */
  save(kind: SnapshotKind): Promise<void> {
    if (kind === 'snapshot' && this.#waiting !== null) return this.#waiting;
    const write: Promise<void> = this.#chain.then(() => {
      if (this.#waiting === write) this.#waiting = null;
      return this.#write(kind);
    });
    if (kind === 'snapshot') this.#waiting = write;
    this.#chain = write;
    return write;
  }

  async #write(kind: SnapshotKind): Promise<void> {
    const name = snapshotFileName(kind);
    const target = join(this.dir, name);
    const temp = join(this.dir, `.${name}.${process.pid}.tmp`);
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(temp, formatSnapshotFile(this.#properties, takeSnapshot(this.#registry, name)), { mode: 0o600 });
      await rename(temp, target);
      this.#log(`Config snapshot saved: ${target}`);
    } catch (err) {
      await rm(temp, { force: true }).catch(() => {});
      this.#log(`cannot save config snapshot ${target}: ${describeFsError(err)}`);
    }
  }
}

/** Parses and checks `model_snapshot`; a one-line INPUT_INVALID naming what is wrong. */
export function parseSnapshot(json: string): Snapshot {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new MarError('INPUT_INVALID', `model_snapshot is not valid JSON (${(err as Error).message}); fix it or remove it`);
  }
  const bad = (why: string): MarError => new MarError('INPUT_INVALID', `model_snapshot: ${why}`);
  const models = (value as { models?: unknown } | null)?.models;
  if (typeof value !== 'object' || value === null || typeof models !== 'object' || models === null) throw bad('no "models" object');
  for (const [name, versions] of Object.entries(models)) {
    if (typeof versions !== 'object' || versions === null) throw bad(`model ${name} has no versions object`);
    for (const [version, s] of Object.entries(versions as Record<string, unknown>)) {
      const st = s as Partial<Record<keyof SnapshotModelState, unknown>> | null;
      if (typeof st?.marName !== 'string' || st.marName === '') throw bad(`model ${name} version ${version} has no marName`);
      for (const key of ['minWorkers', 'maxWorkers', 'batchSize', 'maxBatchDelay'] as const) {
        if (!Number.isInteger(st[key]) || (st[key] as number) < 0)
          throw bad(`model ${name} version ${version}: ${key} is not an integer >= 0`);
      }
    }
  }
  return value as Snapshot;
}

/**
 * Registers every model version of `snapshot` (SnapshotManager#restore): first checks that every archive is in the
 * model store (else nothing is loaded and the start fails, as TorchServe), then registers each with the snapshot's
 * batch size, delay, timeout and workers, sets the default versions, and starts the workers. A model that fails to
 * load is logged and the others still load; the names and versions that failed are returned (for readiness).
 */
export async function restoreSnapshot(registry: ModelRegistry, config: ServerConfig, log: (msg: string) => void): Promise<string[]> {
  const snapshot = parseSnapshot(config.modelSnapshot ?? '{"models":{}}');
  const store = config.modelStore;
  const all = Object.entries(snapshot.models).flatMap(([name, versions]) => Object.entries(versions).map(([v, s]) => ({ name, v, s })));
  log(`Restoring ${all.length} model version(s) from model_snapshot${snapshot.name ? ` ${snapshot.name}` : ''}`);
  for (const { name, v, s } of all) {
    const found = store !== null && (await stat(join(store, s.marName)).catch(() => null)) !== null;
    if (!found) {
      throw new MarError(
        'INPUT_NOT_FOUND',
        `model_snapshot: the archive ${s.marName} of model ${name}, version ${v} is not in the model store ${store ?? '(none)'}; put it back or fix model_snapshot`,
      );
    }
  }
  const failed: string[] = [];
  for (const { name, v, s } of all) {
    try {
      const entry = await registry.register({
        url: s.marName,
        modelName: name,
        request: {
          caller: 'snapshot',
          batchSize: s.batchSize,
          maxBatchDelayMs: s.maxBatchDelay,
          responseTimeoutSeconds: s.responseTimeout,
          minWorkers: s.minWorkers,
          maxWorkers: s.maxWorkers,
        },
      });
      if (entry.version !== v) log(`model_snapshot: ${s.marName} holds model ${name} version ${entry.version}, not ${v}`);
      if (s.defaultVersion) registry.setDefault(name, entry.version);
      const r = await registry.scale(name, entry.serving.minWorkers, entry.serving.maxWorkers, true, entry.version);
      if (r.failed > 0) log(`Model ${name} version ${entry.version}: ${r.failed} worker(s) failed to start: ${r.error?.message ?? ''}`);
      else log(`Model ${name} version ${entry.version} restored with ${entry.serving.minWorkers} worker(s)`);
    } catch (err) {
      failed.push(`${name} ${v}`);
      log(`Failed to restore model ${name} version ${v} from ${s.marName}: ${isMarError(err) ? err.message : String(err)}`);
    }
  }
  return failed;
}
