/**
 * The `context` a Node handler receives: the Python MMS Context (docs/worker-protocol.md §4) with JavaScript
 * (camelCase) names. One Context per loaded model; startBatch() resets the per-request state for each batch.
 */

import { hostname } from 'node:os';
import { isHttpStatus } from '../../errors.js';
import { formatMetricLine } from '../metrics.js';
import type { InferenceRequest } from '../protocol.js';

/** Throw this (or any error with a numeric `statusCode`) to answer the whole batch with that code and message. */
export class PredictionError extends Error {
  readonly statusCode: number;
  constructor(message: string, statusCode = 500) {
    super(message);
    this.name = 'PredictionError';
    this.statusCode = statusCode;
  }
}

export interface SystemProperties {
  modelDir: string;
  /** null on CPU. */
  gpuId: number | null;
  batchSize: number;
  serverName: string;
  serverVersion: string;
}

export type Dimensions = Array<[string, string]> | Record<string, string>;

/** Unit names as MMS's metrics/unit.py spells them. */
const UNITS: Record<string, string> = {
  ms: 'Milliseconds',
  s: 'Seconds',
  percent: 'Percent',
  count: 'Count',
  MB: 'Megabytes',
  GB: 'Gigabytes',
  kB: 'Kilobytes',
  B: 'Bytes',
  '': 'unit',
};

interface StoredMetric {
  name: string;
  unit: string;
  value: number;
  dimensions: Array<[string, string]>;
  requestIds: string[];
  isCounter: boolean;
}

/** MMS MetricsStore with JS names. Lines are printed by the worker after each message. */
export class Metrics {
  readonly #modelName: string;
  readonly #requestIds: string[];
  readonly #store = new Map<string, StoredMetric>();

  constructor(modelName: string, requestIds: string[]) {
    this.#modelName = modelName;
    this.#requestIds = requestIds;
  }

  #ids(idx: number | undefined): string[] {
    if (idx === undefined || idx === null) return [...this.#requestIds];
    const id = this.#requestIds[idx];
    return id === undefined ? [] : [id];
  }

  #add(
    name: string,
    value: number,
    ids: string[],
    unit: string,
    dimensions: Dimensions | undefined,
    isCounter: boolean,
    level: 'Model' | 'Error',
  ): void {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new TypeError(`metric ${name}: value must be a finite number`);
    const dims: Array<[string, string]> = dimensions ? (Array.isArray(dimensions) ? [...dimensions] : Object.entries(dimensions)) : [];
    if (level === 'Error') dims.push(['Level', 'Error']);
    else dims.push(['ModelName', this.#modelName], ['Level', 'Model']);
    const unitName = UNITS[unit] ?? unit;
    const key = JSON.stringify([name, unitName, dims, ids]);
    const existing = this.#store.get(key);
    if (existing && isCounter) existing.value += value;
    else this.#store.set(key, { name, unit: unitName, value, dimensions: dims, requestIds: ids, isCounter });
  }

  addCounter(name: string, value: number, idx?: number, dimensions?: Dimensions): void {
    this.#add(name, value, this.#ids(idx), 'count', dimensions, true, 'Model');
  }
  addTime(name: string, value: number, idx?: number, unit = 'ms', dimensions?: Dimensions): void {
    this.#add(name, value, this.#ids(idx), unit, dimensions, false, 'Model');
  }
  addSize(name: string, value: number, idx?: number, unit = 'MB', dimensions?: Dimensions): void {
    this.#add(name, value, this.#ids(idx), unit, dimensions, false, 'Model');
  }
  addPercent(name: string, value: number, idx?: number, dimensions?: Dimensions): void {
    this.#add(name, value, this.#ids(idx), 'percent', dimensions, false, 'Model');
  }
  addError(name: string, value: number, dimensions?: Dimensions): void {
    // MMS records errors with the unit name 'unit' and no request id.
    this.#add(name, value, [], '', dimensions, false, 'Error');
  }
  addMetric(name: string, value: number, idx?: number, unit = '', dimensions?: Dimensions): void {
    this.#add(name, value, this.#ids(idx), unit, dimensions, false, 'Model');
  }

  /** How many metrics are recorded. */
  get size(): number {
    return this.#store.size;
  }

  /** The `[METRICS]` lines for everything recorded, in insertion order. */
  lines(): string[] {
    const host = hostname();
    const ts = Math.floor(Date.now() / 1000);
    return [...this.#store.values()].map((m) => formatMetricLine({ ...m, hostname: host, timestamp: ts }));
  }
}

interface RequestState {
  /** §3.2: params first as {name: {'content-type': ct}}, then the HTTP headers. */
  requestHeaders: Record<string, unknown>;
  status: number;
  phrase: string;
  responseHeaders: Array<[string, string]>;
}

export interface ResponseParts {
  contentType: string | null;
  statusCode: number;
  reasonPhrase: string;
  headers: Array<[string, string]>;
}

export class Context {
  readonly modelName: string;
  readonly manifest: unknown;
  readonly systemProperties: SystemProperties;
  /** TorchServe's model_yaml_config: the parsed model.configFile, or {}. */
  readonly modelYamlConfig: Record<string, unknown>;
  /** The class to throw for a chosen status code (also exported by no module: use it from here). */
  readonly PredictionError = PredictionError;
  requestIds: string[] = [];
  metrics: Metrics;
  #requests: RequestState[] = [];

  constructor(o: { modelName: string; manifest: unknown; systemProperties: SystemProperties; modelYamlConfig: Record<string, unknown> }) {
    this.modelName = o.modelName;
    this.manifest = o.manifest;
    this.systemProperties = o.systemProperties;
    this.modelYamlConfig = o.modelYamlConfig;
    this.metrics = new Metrics(o.modelName, []);
  }

  /** Worker-internal: per-batch state. */
  startBatch(batch: InferenceRequest[] | null, loadId?: string): void {
    this.requestIds = batch ? batch.map((r) => r.requestId) : loadId ? [loadId] : [];
    this.metrics = new Metrics(this.modelName, this.requestIds);
    this.#requests = (batch ?? []).map((r) => {
      const requestHeaders: Record<string, unknown> = {};
      // A null content type reads as '' here, as in the Python worker (MMS decodes the empty string).
      for (const p of r.params) requestHeaders[p.name] = { 'content-type': p.contentType ?? '' };
      for (const [k, v] of r.headers) requestHeaders[k] = v;
      return { requestHeaders, status: 200, phrase: '', responseHeaders: [] };
    });
  }

  #req(idx: number): RequestState {
    const r = this.#requests[idx];
    if (!r) throw new RangeError(`request index ${idx} is out of range for a batch of ${this.#requests.length}`);
    return r;
  }

  getRequestId(idx = 0): string | undefined {
    return this.requestIds[idx];
  }

  /** A request header (or a parameter's {'content-type'} entry); exact name first, then case-insensitive. */
  getRequestHeader(idx: number, name: string): unknown {
    const h = this.#req(idx).requestHeaders;
    if (Object.hasOwn(h, name)) return h[name];
    const lower = name.toLowerCase();
    for (const [k, v] of Object.entries(h)) if (k.toLowerCase() === lower) return v;
    return undefined;
  }

  getAllRequestHeaders(idx: number): Record<string, unknown> {
    return { ...this.#req(idx).requestHeaders };
  }

  setResponseHeader(idx: number, name: string, value: string): void {
    const r = this.#req(idx);
    const v = String(value);
    const i = r.responseHeaders.findIndex(([k]) => k === name);
    if (i >= 0) r.responseHeaders[i] = [name, v];
    else r.responseHeaders.push([name, v]);
  }

  getResponseHeaders(idx: number): Record<string, string> {
    return Object.fromEntries(this.#req(idx).responseHeaders);
  }

  /** Stored as the response header `content-type`, as MMS does. */
  setResponseContentType(idx: number, type: string): void {
    this.setResponseHeader(idx, 'content-type', type);
  }

  getResponseContentType(idx: number): string | undefined {
    const found = this.#req(idx).responseHeaders.find(([k]) => k.toLowerCase() === 'content-type');
    return found?.[1];
  }

  /** Note the JS argument order: index first (Python's is code, phrase, idx). */
  setResponseStatus(idx: number, code: number, phrase = ''): void {
    if (!isHttpStatus(code)) throw new RangeError(`status code must be an integer 100-999, got ${code}`);
    const r = this.#req(idx);
    r.status = code;
    r.phrase = phrase ?? '';
  }

  setAllResponseStatus(code: number, phrase = ''): void {
    for (let i = 0; i < this.#requests.length; i++) this.setResponseStatus(i, code, phrase);
  }

  getResponseStatus(idx: number): { code: number; phrase: string } {
    const r = this.#req(idx);
    return { code: r.status, phrase: r.phrase };
  }

  /** Worker-internal: what goes on the wire for request idx. */
  responseParts(idx: number): ResponseParts {
    const r = this.#req(idx);
    return {
      contentType: this.getResponseContentType(idx) ?? null,
      statusCode: r.status,
      reasonPhrase: r.phrase,
      headers: r.responseHeaders,
    };
  }
}
