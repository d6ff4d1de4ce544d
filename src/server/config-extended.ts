/**
 * The config.properties keys beyond MMS's core ones (config.ts): TorchServe's (metrics API, token
 * authorization, model API control, snapshots, startup timeout, per-model Python requirements), TLS for https
 * addresses, and URL download limits. Their defaults come from the dialect (dialects/), so the same file means
 * what it meant to the server it was written for.
 */

import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MarError } from '../errors.js';
import type { ListenAddress } from './config.js';
import type { ProtocolServerConfig } from './config-protocols.js';
import { PROTOCOL_CONFIG_KEYS, resolveProtocolConfig } from './config-protocols.js';
import type { Dialect, DialectName } from './dialects/index.js';
import { LOG_FORMATS, type LogFormat } from './log-format.js';
import type { TlsMaterial } from './tls.js';
import { loadTlsMaterial } from './tls.js';

/** The keys this module reads (with config.ts's CONFIG_KEYS, every key the server acts on). */
export const EXTENDED_CONFIG_KEYS = [
  'metrics_address',
  'metrics_mode',
  'model_snapshot',
  'enable_model_api',
  'disable_token_authorization',
  'token_expiration_min',
  'default_startup_timeout',
  'startup_timeout',
  'install_py_dep_per_model',
  'python_deps_location',
  'private_key_file',
  'certificate_file',
  'keystore',
  'keystore_pass',
  'keystore_type',
  'enable_envvars_config',
  'use_env_allowed_urls',
  'max_download_size',
  'download_timeout',
  // KServe protocols and gRPC (config-protocols.ts)
  ...PROTOCOL_CONFIG_KEYS,
  'log_format',
] as const;

/** What the command line adds that is no config key in either server (TorchServe's flags). */
export interface ExtendedCliOptions {
  /** TorchServe's --ncs / --no-config-snapshots. */
  noConfigSnapshots?: boolean;
}

/** The part of ServerConfig this module resolves (with config-protocols.ts). */
export interface ExtendedServerConfig extends ProtocolServerConfig {
  /** Whose defaults, texts and status codes the server uses. */
  readonly dialect: DialectName;
  /** Where the metrics API listens (TorchServe: 127.0.0.1:8082), or null: no metrics listener (MMS). */
  readonly metricsAddress: ListenAddress | null;
  readonly metricsMode: 'prometheus' | 'log';
  /** The model_snapshot value (TorchServe's JSON text of the models to load), or null. */
  readonly modelSnapshot: string | null;
  /** Whether management changes write config snapshots (TorchServe unless --ncs; never for MMS). */
  readonly snapshotsEnabled: boolean;
  /** Where config snapshots go: `<log_location, else ./logs>/config` (TorchServe's FSSnapshotSerializer), absolute. */
  readonly snapshotDir: string;
  /** Where metrics_mode=log writes ts_metrics.log and model_metrics.log: metrics_location, else ./logs (TorchServe's). */
  readonly metricsLogDir: string;
  /** Whether POST /models and DELETE /models/{m} are allowed (MMS: always; TorchServe: enable_model_api). */
  readonly enableModelApi: boolean;
  /** Whether requests need `Authorization: Bearer <key>` (TorchServe's default; see auth.ts). */
  readonly tokenAuthorization: boolean;
  /** Minutes a management or inference key lives (token_expiration_min, default 60; fractions allowed as TorchServe). */
  readonly tokenExpirationMinutes: number;
  /** Where key_file.json is written: the working directory, as TorchServe. */
  readonly keyFile: string;
  /** How long a worker may take to start and load its model (default_startup_timeout, seconds). */
  readonly startupTimeoutSeconds: number;
  /** install_py_dep_per_model: pip-install an archive's requirements file for its workers. */
  readonly installPyDepPerModel: boolean;
  /** Where installed requirements are kept, one directory per requirements digest (reused across restarts). */
  readonly pythonDepsLocation: string;
  /** Key material for https addresses, or null. */
  readonly tls: TlsMaterial | null;
  /** Limits for model archives downloaded from allowed URLs. */
  readonly maxDownloadBytes: number;
  readonly downloadTimeoutSeconds: number;
  /** `text` (readable lines) or `json` (one JSON object per line on stdout, for log shippers): logger.ts. */
  readonly logFormat: LogFormat;
  /** Keys in the configuration that the server does not act on, logged once at start. */
  readonly ignoredKeys: readonly string[];
  /** Warnings to log once at start (e.g. TorchServe's open allowed_urls). */
  readonly startupWarnings: readonly string[];
}

function invalid(key: string, value: string, why: string): MarError {
  return new MarError('INPUT_INVALID', `invalid config value ${key}=${JSON.stringify(value)}: ${why}`);
}

/** The value of `key`, else the dialect's default for it, else `def`. */
function valueFor(props: ReadonlyMap<string, string>, dialect: Dialect, key: string, def = ''): string {
  const raw = props.get(key);
  if (raw !== undefined && raw.trim() !== '') return raw.trim();
  return dialect.defaults[key] ?? def;
}

function bool(props: ReadonlyMap<string, string>, dialect: Dialect, key: string, def: boolean): boolean {
  const v = valueFor(props, dialect, key, String(def)).toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw invalid(key, props.get(key) ?? v, 'expected true or false');
}

function number(props: ReadonlyMap<string, string>, dialect: Dialect, key: string, def: number, min: number, integer = true): number {
  const raw = valueFor(props, dialect, key, String(def));
  const n = (integer ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)$/).test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n < min || (integer && !Number.isSafeInteger(n))) {
    throw invalid(key, raw, `expected ${integer ? 'an integer' : 'a number'} >= ${min}`);
  }
  return n;
}

/** The default python_deps_location: <tmpdir>/mar-tools-<uid>/python-deps (beside the extraction cache). */
export function defaultPythonDepsLocation(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `mar-tools-${uid}`, 'python-deps');
}

/**
 * Resolves the extended keys. `parseAddress` is config.ts's listen-address parser; `known` the keys config.ts
 * reads, so the rest can be reported as ignored.
 */
export function resolveExtendedConfig(
  props: ReadonlyMap<string, string>,
  ctx: {
    cwd: string;
    dialect: Dialect;
    cli: ExtendedCliOptions;
    known: readonly string[];
    parseAddress: (raw: string, key: string, defaultPort: number, tls: TlsMaterial | null) => ListenAddress;
  },
): ExtendedServerConfig {
  const { dialect, cwd } = ctx;
  const tls = loadTlsMaterial(props, cwd);
  const metricsRaw = valueFor(props, dialect, 'metrics_address');
  const mode = valueFor(props, dialect, 'metrics_mode', 'log').replace(/\s/g, '').toLowerCase();
  if (mode !== 'prometheus' && mode !== 'log')
    throw invalid('metrics_mode', props.get('metrics_mode') ?? mode, 'expected prometheus or log');
  const snapshot = props.get('model_snapshot')?.trim();
  const startupKey = props.get('default_startup_timeout')?.trim() ? 'default_startup_timeout' : 'startup_timeout';
  const depsRaw = props.get('python_deps_location')?.trim();
  const known = new Set<string>([...ctx.known, ...EXTENDED_CONFIG_KEYS]);
  const logFormat = valueFor(props, dialect, 'log_format', 'text').toLowerCase();
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    throw invalid('log_format', props.get('log_format') ?? logFormat, `expected ${LOG_FORMATS.join(' or ')}`);
  }
  const warnings: string[] = [];
  if (dialect.openAllowedUrlsWarning !== null && !props.get('allowed_urls')?.trim()) warnings.push(dialect.openAllowedUrlsWarning);
  return {
    dialect: dialect.name,
    metricsAddress: metricsRaw === '' ? null : ctx.parseAddress(metricsRaw, 'metrics_address', 8082, tls),
    metricsMode: mode,
    modelSnapshot: snapshot ? snapshot : null,
    snapshotsEnabled: dialect.name === 'torchserve' && ctx.cli.noConfigSnapshots !== true,
    snapshotDir: join(resolve(cwd, props.get('log_location')?.trim() || 'logs'), 'config'),
    metricsLogDir: resolve(cwd, props.get('metrics_location')?.trim() || 'logs'),
    enableModelApi: bool(props, dialect, 'enable_model_api', true),
    tokenAuthorization: !bool(props, dialect, 'disable_token_authorization', true),
    tokenExpirationMinutes: number(props, dialect, 'token_expiration_min', 60, 0, false),
    keyFile: join(cwd, 'key_file.json'),
    startupTimeoutSeconds: number(props, dialect, startupKey, 120, 0),
    installPyDepPerModel: bool(props, dialect, 'install_py_dep_per_model', false),
    pythonDepsLocation: depsRaw ? resolve(cwd, depsRaw) : defaultPythonDepsLocation(),
    tls,
    maxDownloadBytes: number(props, dialect, 'max_download_size', 10 * 1024 ** 3, 1),
    downloadTimeoutSeconds: number(props, dialect, 'download_timeout', 3600, 1),
    logFormat: logFormat as LogFormat,
    ignoredKeys: Object.freeze([...props.keys()].filter((k) => !known.has(k)).sort()),
    startupWarnings: Object.freeze(warnings),
    ...resolveProtocolConfig(props, tls),
  };
}
