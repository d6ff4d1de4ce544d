import { readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { type ArchiveLimits, DEFAULT_ARCHIVE_LIMITS, LIMIT_CONFIG_KEYS } from '../archive/limits.js';
import { describeFsError, MarError } from '../errors.js';
import { parseCacheCap } from '../runtime/cache/location.js';
import type { OpenModelOptions } from '../runtime/model.js';
import { DEFAULT_PYTHON, PYTHON_ENV } from '../runtime/python-env.js';
// --- TorchServe dialect, TLS, downloads (issue 12): the keys beyond MMS's core live in config-extended.ts ---
import { applyEnvOverrides, substituteEnvReferences } from './config-env.js';
import type { ExtendedCliOptions, ExtendedServerConfig } from './config-extended.js';
import { EXTENDED_CONFIG_KEYS, resolveExtendedConfig } from './config-extended.js';
// --- end TorchServe dialect imports ---
import type { ConnectionLimits } from './connection-guard.js';
import type { Dialect, DialectName } from './dialects/index.js';
import { dialectNamed } from './dialects/index.js';
import type { TlsMaterial } from './tls.js';

/** Where a listener binds: `http(s)://host[:port]` or `unix:/path` (MMS Connector syntax; https needs TLS keys, see tls.ts). */
export type ListenAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly url: string; readonly tls?: true }
  | { readonly kind: 'unix'; readonly path: string; readonly url: string };

/** The validated, frozen server configuration (MMS config.properties keys, plus a few of ours; TorchServe's in ExtendedServerConfig). */
export interface ServerConfig extends ExtendedServerConfig {
  readonly inferenceAddress: ListenAddress;
  readonly managementAddress: ListenAddress;
  /** Absolute model store directory, or null when none is configured. */
  readonly modelStore: string | null;
  /** `ALL`, or `[name=]url` entries to load at startup. */
  readonly loadModels: readonly string[];
  /** Workers for a POST /models without initial_workers (MMS: 0 when unset). */
  readonly defaultWorkersPerModel: number;
  /** Workers for startup models: default_workers_per_model, else the number of CPUs. */
  readonly startupWorkersPerModel: number;
  readonly jobQueueSize: number;
  readonly maxRequestSize: number;
  readonly maxResponseSize: number;
  readonly defaultResponseTimeoutSeconds: number;
  readonly decodeInputRequest: boolean;
  /** Patterns a http(s) model url must match in full; empty = remote urls are refused. */
  readonly allowedUrls: readonly RegExp[];
  /** Python interpreter for python models (ours). */
  readonly python: string;
  /** How long SIGTERM waits for in-flight requests (ours, seconds). */
  readonly shutdownTimeoutSeconds: number;
  /** How long DELETE /models/{m} waits for in-flight batches before answering 408 (MMS unregister_model_timeout, seconds). */
  readonly unregisterModelTimeoutSeconds: number;
  /** Directory for model_metrics.log (the workers' [METRICS] lines), or null: metrics are not kept. */
  readonly metricsLocation: string | null;
  /** Directory for access_log.log (one line per request, as MMS's ACCESS_LOG), or null: no access log. */
  readonly logLocation: string | null;
  /** The config file read, if any. */
  readonly configFile: string | null;
  // --- reliability limits (issue 15): archive limits (archive/limits.ts), connections (connection-guard.ts) ---
  /** max_manifest_size, max_archive_entries, max_archive_size, max_archive_ratio: what register loads. */
  readonly archiveLimits: Readonly<ArchiveLimits>;
  /** request_header_timeout, request_body_timeout, keep_alive_timeout, max_connections, max_header_size. */
  readonly connectionLimits: Readonly<ConnectionLimits>;
  /** The extraction cache (ours): model_cache_dir and model_cache_max_size, as openModel options; see cacheConfig. */
  readonly modelCache: Readonly<Pick<OpenModelOptions, 'cacheDir' | 'cacheMaxSize'>>;
}

/** Every key we read (others are accepted and ignored, like MMS ignores unknown keys). */
export const CONFIG_KEYS = [
  'inference_address',
  'management_address',
  'model_store',
  'load_models',
  'default_workers_per_model',
  'job_queue_size',
  'max_request_size',
  'max_response_size',
  'default_response_timeout',
  'default_response_timeout_seconds',
  'unregister_model_timeout',
  'decode_input_request',
  'allowed_urls',
  'python',
  'shutdown_timeout',
  'number_of_gpu',
  'metrics_location',
  'log_location',
  // reliability limits (issue 15)
  'max_manifest_size',
  'max_archive_entries',
  'max_archive_size',
  'max_archive_ratio',
  'request_header_timeout',
  'request_body_timeout',
  'keep_alive_timeout',
  'max_connections',
  'max_header_size',
  'model_cache_dir',
  'model_cache_max_size',
] as const;

export interface LoadConfigOptions {
  /** Explicit config file (--config); else env MMS_CONFIG_FILE; else ./config.properties if present. */
  configFile?: string;
  /** CLI --model-store, overrides the file and env. */
  modelStore?: string;
  /** CLI --models, overrides load_models. */
  models?: readonly string[];
  /** config.properties keys set from code (e.g. `{ inference_address: 'http://127.0.0.1:0' }`); they override the file and the environment. */
  properties?: Readonly<Record<string, string | number | boolean>>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  // --- TorchServe dialect (issue 12) ---
  /** Whose defaults, environment variables, texts and status codes: MMS's (default) or TorchServe's (--ts-config). */
  dialect?: DialectName;
  /** TorchServe's --disable-token-auth (sets disable_token_authorization=true). */
  disableTokenAuth?: boolean;
  /** TorchServe's --enable-model-api (sets enable_model_api=true). */
  enableModelApi?: boolean;
  /** TorchServe's --ncs / --no-config-snapshots. */
  noConfigSnapshots?: boolean;
}

/**
 * Parses Java `.properties` text: `key=value`, `key: value` or `key value`; `#`/`!` comments; backslash line
 * continuation and escapes (\t \n \uXXXX). Later keys win.
 */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.replace(/^[ \t\f]+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    // an odd number of trailing backslashes continues the line
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) {
      line = line.slice(0, -1) + lines[++i]!.replace(/^[ \t\f]+/, '');
    }
    const m = /^((?:\\.|[^=:\s\\])*)[ \t\f]*(?:[=:][ \t\f]*|[ \t\f]*)(.*)$/.exec(line);
    if (!m) continue;
    out.set(unescapeProperty(m[1]!), unescapeProperty(m[2]!));
  }
  return out;
}

function unescapeProperty(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, c: string) => {
    if (c.length === 5) return String.fromCharCode(parseInt(c.slice(1), 16));
    return c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c === 'f' ? '\f' : c;
  });
}

/**
 * Parses `http(s)://host[:port]` / `unix:/path`; a missing port is 80 for inference and 8081 for management (as MMS).
 * https is accepted only when `tls` holds the key material (private_key_file + certificate_file, or keystore).
 */
export function parseListenAddress(raw: string, key: string, defaultPort: number, tls: TlsMaterial | null = null): ListenAddress {
  const value = raw.trim();
  if (value.startsWith('unix:')) {
    const path = value.slice('unix:'.length);
    if (!path.startsWith('/')) throw invalid(key, raw, 'a unix address needs an absolute path, e.g. unix:/tmp/mms.sock');
    return Object.freeze({ kind: 'unix', path, url: `unix:${path}` });
  }
  const m = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+)(?::(\d+))?\/?$/i.exec(value);
  if (!m) throw invalid(key, raw, 'expected http://host[:port] or unix:/path');
  const https = m[1]!.toLowerCase() === 'https';
  if (https && tls === null) {
    throw invalid(
      key,
      raw,
      'https is not supported without a certificate: set private_key_file and certificate_file (or keystore), or use http://',
    );
  }
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalid(key, raw, 'the port must be 0-65535');
  const host = m[2]!.startsWith('[') ? m[2]!.slice(1, -1) : m[2]!;
  if (https) return Object.freeze({ kind: 'tcp', host, port, url: `https://${m[2]}:${port}`, tls: true });
  return Object.freeze({ kind: 'tcp', host, port, url: `http://${m[2]}:${port}` });
}

function invalid(key: string, value: string, why: string): MarError {
  return new MarError('INPUT_INVALID', `invalid config value ${key}=${JSON.stringify(value)}: ${why}`);
}

function intValue(props: Map<string, string>, key: string, def: number, min: number): number {
  const raw = props.get(key);
  if (raw === undefined || raw.trim() === '') return def;
  const n = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw invalid(key, raw, `expected an integer >= ${min}`);
  return n;
}

function boolValue(props: Map<string, string>, key: string, def: boolean): boolean {
  const raw = props.get(key);
  if (raw === undefined || raw.trim() === '') return def;
  const v = raw.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw invalid(key, raw, 'expected true or false');
}

/**
 * Builds the server configuration: defaults < config file < MMS_<KEY> environment variables < `properties` < CLI options.
 * TorchServe's dialect: defaults < config file < CLI flags < TS_<KEY> variables (with enable_envvars_config=true) < `properties`.
 * Throws a one-line MarError for a bad value or an unreadable file, before anything listens.
 */
export function loadConfig(options: LoadConfigOptions = {}): ServerConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const dialect = dialectNamed(options.dialect ?? 'mms');
  let configFile: string | null = null;
  let text = '';
  const explicit = options.configFile ?? env[dialect.configFileEnv];
  const candidate = explicit ? resolve(cwd, explicit) : resolve(cwd, 'config.properties');
  try {
    text = readFileSync(candidate, 'utf8');
    configFile = candidate;
  } catch (err) {
    if (explicit) {
      throw new MarError('INPUT_NOT_FOUND', `cannot read config file ${candidate}: ${describeFsError(err)}`, { cause: err });
    }
  }
  const props = parseProperties(text);
  substituteEnvReferences(props, env, dialect);
  const cliFlags = (): void => {
    if (options.modelStore !== undefined) props.set('model_store', options.modelStore);
    if (options.models !== undefined && options.models.length > 0) props.set('load_models', options.models.join(','));
    // TorchServe's flags can only turn these on, never off
    if (options.disableTokenAuth) props.set('disable_token_authorization', 'true');
    if (options.enableModelApi) props.set('enable_model_api', 'true');
  };
  if (dialect.envBeatsCommandLine) cliFlags();
  applyEnvOverrides(props, env, dialect, [...CONFIG_KEYS, ...EXTENDED_CONFIG_KEYS]);
  // MMS's log4j configuration puts model_metrics.log under $METRICS_LOCATION and access_log.log under $LOG_LOCATION
  if (!props.has('metrics_location') && env['METRICS_LOCATION']) props.set('metrics_location', env['METRICS_LOCATION']);
  if (!props.has('log_location') && env['LOG_LOCATION']) props.set('log_location', env['LOG_LOCATION']);
  if (!props.get('python')?.trim() && env[PYTHON_ENV]?.trim()) props.set('python', env[PYTHON_ENV]);
  // ours, in both dialects (a container's env): text or json lines (logger.ts)
  if (!props.has('log_format') && env['LOG_FORMAT']) props.set('log_format', env['LOG_FORMAT']);
  for (const [k, v] of Object.entries(options.properties ?? {})) props.set(k, String(v));
  if (!dialect.envBeatsCommandLine) cliFlags();
  return resolveConfig(props, {
    cwd,
    configFile,
    dialect: dialect.name,
    ...(options.noConfigSnapshots !== undefined ? { cli: { noConfigSnapshots: options.noConfigSnapshots } } : {}),
  });
}

// ---- the extraction cache (issue 14): where extracted archives are kept, and how large that may grow ----

/**
 * model_cache_dir (relative to the working directory) and model_cache_max_size (a size like 20G, or a percentage
 * of the disk space the cache could use, like 50%). Unset: $MAR_CACHE_DIR / $MAR_CACHE_MAX_SIZE, else the
 * platform's cache directory and a quarter of the disk (runtime/cache/location.ts).
 */
function cacheConfig(props: Map<string, string>, cwd: string): ServerConfig['modelCache'] {
  const dir = props.get('model_cache_dir')?.trim();
  const capRaw = props.get('model_cache_max_size')?.trim();
  const cap = capRaw ? parseCacheCap(capRaw) : null;
  if (capRaw && !cap) throw invalid('model_cache_max_size', capRaw, 'expected a size (20G, 512M, bytes) or a percentage of the disk (50%)');
  return Object.freeze({ ...(dir ? { cacheDir: resolve(cwd, dir) } : {}), ...(cap ? { cacheMaxSize: cap } : {}) });
}

/** Validates and defaults parsed properties into a frozen ServerConfig (MMS's dialect unless ctx.dialect says otherwise). */
export function resolveConfig(
  props: Map<string, string>,
  ctx: { cwd: string; configFile: string | null; dialect?: DialectName; cli?: ExtendedCliOptions },
): ServerConfig {
  const dialect: Dialect = dialectNamed(ctx.dialect ?? 'mms');
  const extended = resolveExtendedConfig(props, {
    cwd: ctx.cwd,
    dialect,
    cli: ctx.cli ?? {},
    known: CONFIG_KEYS,
    parseAddress: parseListenAddress,
  });
  const inferenceAddress = parseListenAddress(
    props.get('inference_address') ?? 'http://127.0.0.1:8080',
    'inference_address',
    80,
    extended.tls,
  );
  const managementAddress = parseListenAddress(
    props.get('management_address') ?? 'http://127.0.0.1:8081',
    'management_address',
    8081,
    extended.tls,
  );
  const storeRaw = props.get('model_store')?.trim();
  const modelStore = storeRaw ? resolve(ctx.cwd, storeRaw) : null;
  if (modelStore !== null && !statSync(modelStore, { throwIfNoEntry: false })?.isDirectory()) {
    throw new MarError('INPUT_NOT_FOUND', `model_store ${modelStore} is not a directory; create it or fix model_store/--model-store`);
  }
  const loadModels = (props.get('load_models') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const defaultWorkersPerModel = intValue(props, 'default_workers_per_model', 0, 0);
  const jobQueueSize = intValue(props, 'job_queue_size', 100, 1);
  const maxRequestSize = intValue(props, 'max_request_size', 6553500, 1);
  const maxResponseSize = intValue(props, 'max_response_size', 6553500, 1);
  // minutes for MMS, seconds for TorchServe
  let defaultResponseTimeoutSeconds = dialect.responseTimeoutUnitSeconds * intValue(props, 'default_response_timeout', 120, 1);
  if (props.get('default_response_timeout_seconds')?.trim()) {
    defaultResponseTimeoutSeconds = intValue(props, 'default_response_timeout_seconds', 7200, 1);
  }
  const allowedUrls: RegExp[] = [];
  for (const raw of (props.get('allowed_urls')?.trim() || dialect.defaults['allowed_urls'] || '').split(',')) {
    const pattern = raw.trim();
    if (pattern === '') continue;
    try {
      allowedUrls.push(new RegExp(`^(?:${pattern})$`, 'i'));
    } catch (err) {
      throw invalid('allowed_urls', pattern, `not a valid regular expression (${(err as Error).message})`);
    }
  }
  const python = props.get('python')?.trim() || DEFAULT_PYTHON;
  const metricsRaw = props.get('metrics_location')?.trim();
  const logRaw = props.get('log_location')?.trim();
  return Object.freeze({
    inferenceAddress,
    managementAddress,
    modelStore,
    loadModels: Object.freeze(loadModels),
    defaultWorkersPerModel,
    startupWorkersPerModel: defaultWorkersPerModel > 0 ? defaultWorkersPerModel : Math.max(1, cpus().length),
    jobQueueSize,
    maxRequestSize,
    maxResponseSize,
    defaultResponseTimeoutSeconds,
    decodeInputRequest: boolValue(props, 'decode_input_request', true),
    allowedUrls: Object.freeze(allowedUrls),
    python,
    shutdownTimeoutSeconds: intValue(props, 'shutdown_timeout', 30, 0),
    unregisterModelTimeoutSeconds: intValue(props, 'unregister_model_timeout', 120, 0),
    metricsLocation: metricsRaw ? resolve(ctx.cwd, metricsRaw) : null,
    logLocation: logRaw ? resolve(ctx.cwd, logRaw) : null,
    configFile: ctx.configFile,
    ...extended,
    ...reliabilityLimits(props, maxRequestSize),
    modelCache: cacheConfig(props, ctx.cwd),
  });
}

// --- reliability limits (issue 15): defaults far above real use; docs/server.md beside MMS's and TorchServe's ---
function reliabilityLimits(props: Map<string, string>, maxRequestSize: number): Pick<ServerConfig, 'archiveLimits' | 'connectionLimits'> {
  const ms = (key: string, def: number): number => 1000 * intValue(props, key, def, 0);
  return {
    // archive/limits.ts owns the keys' names and defaults
    archiveLimits: Object.freeze({
      maxManifestBytes: intValue(props, LIMIT_CONFIG_KEYS.maxManifestBytes, DEFAULT_ARCHIVE_LIMITS.maxManifestBytes, 1),
      maxEntries: intValue(props, LIMIT_CONFIG_KEYS.maxEntries, DEFAULT_ARCHIVE_LIMITS.maxEntries, 1),
      maxTotalBytes: intValue(props, LIMIT_CONFIG_KEYS.maxTotalBytes, DEFAULT_ARCHIVE_LIMITS.maxTotalBytes, 1),
      maxRatio: intValue(props, LIMIT_CONFIG_KEYS.maxRatio, DEFAULT_ARCHIVE_LIMITS.maxRatio, 1),
    }),
    connectionLimits: Object.freeze({
      headerTimeoutMs: ms('request_header_timeout', 20),
      requestTimeoutMs: ms('request_body_timeout', 60),
      keepAliveTimeoutMs: ms('keep_alive_timeout', 60),
      maxConnections: intValue(props, 'max_connections', 1000, 0),
      maxHeaderBytes: intValue(props, 'max_header_size', 16384, 1024),
      maxRequestBytes: maxRequestSize,
    }),
  };
}

/** True when both APIs are served by one listener (MMS ConnectorType.BOTH). */
export function isSameAddress(a: ListenAddress, b: ListenAddress): boolean {
  // port 0 means "any free port": two such addresses are two listeners
  if (a.kind === 'tcp' && a.port === 0) return false;
  return a.url === b.url;
}
