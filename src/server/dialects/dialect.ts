/**
 * The two dialects the server speaks: MMS's (the default, `--config`/`--mms-config`) and TorchServe's
 * (`--ts-config`, the `torchserve` command). Where they differ (defaults, environment variables, status texts
 * and codes), the difference is one row of a table in mms.ts or torchserve.ts, read by the config loader and
 * the routes; no route asks which dialect it is in.
 */

import type { MarError } from '../../errors.js';

export type DialectName = 'mms' | 'torchserve';

/** Workers of one model (its default version), for /ping. */
export interface ModelHealth {
  running: number;
  configured: number;
}

/** The errors of url resolution that differ between the dialects. */
export interface UrlErrors {
  /** url= (empty): TorchServe's own 404; null: looked up in the store like any name (MMS). */
  empty: (() => MarError) | null;
  /** An http(s) url that does not parse. */
  malformed(url: string): MarError;
  /** The download failed: no connection, a status other than 200 (`status`), or `why` (too large, too slow, a redirect). */
  downloadFailed(url: string, status: number | null, why?: string, cause?: unknown): MarError;
  /** The downloaded archive's file is already in the model store (MMS: a conflict, TorchServe: a server error). */
  exists(fileName: string): MarError;
  /** A name that is not in the model store. */
  notInStore(url: string): MarError;
}

export interface Dialect {
  readonly name: DialectName;
  /** The product name in log lines ("MMS", "TorchServe"). */
  readonly product: string;

  // --- configuration -------------------------------------------------------------------------------------
  /** The environment variable that names the config file (MMS_CONFIG_FILE, TS_CONFIG_FILE). */
  readonly configFileEnv: string;
  /** Prefix of the environment variables that override keys (MMS_, TS_). */
  readonly envPrefix: string;
  /** The keys an environment variable may set (upper-cased after the prefix); null: the core keys config.ts reads. */
  readonly envKeys: readonly string[] | null;
  /** Keys whose variable applies only when another key is true (TorchServe: allowed_urls needs use_env_allowed_urls). */
  readonly envGuardedKeys: Readonly<Record<string, string>>;
  /** Whether those variables apply only with enable_envvars_config=true (TorchServe), or always (ours for MMS). */
  readonly envNeedsOptIn: boolean;
  /** Whether environment variables override the command line too (TorchServe), or only the file (MMS). */
  readonly envBeatsCommandLine: boolean;
  /** `$$NAME$$` inside a value; an unset NAME is '' (MMS) or a config error (TorchServe). */
  readonly envReference: RegExp;
  readonly unsetEnvReference: 'empty' | 'error';
  /** Defaults of the keys whose default differs between the dialects, as config.properties text. */
  readonly defaults: Readonly<Record<string, string>>;
  /** `default_response_timeout` is in minutes (MMS: 60) or seconds (TorchServe: 1). */
  readonly responseTimeoutUnitSeconds: number;
  /** Logged once at start when allowed_urls is left at the dialect's default (TorchServe's warning), else null. */
  readonly openAllowedUrlsWarning: string | null;

  // --- management API ------------------------------------------------------------------------------------
  /** A register call checks at register time that the handler module is in the archive (MMS), or leaves it to the worker (TorchServe). */
  readonly registerChecksHandler: boolean;
  /** A register call resolves (downloads) its url before it checks whether model_name is taken (TorchServe), or after (MMS). */
  readonly urlBeforeNameCheck: boolean;
  /** 409 for registering a name in a version it already has. */
  versionConflict(name: string, version: string): MarError;
  /** `GET /models/{name}`: the default version as one object (MMS) or as a one-element array (TorchServe). */
  readonly describeAsArray: boolean;
  /** `{"status"}` of a register call that started no workers. */
  registered(name: string, version: string): string;
  /** `{"status"}` of a synchronous register call whose workers all started. */
  registeredWithWorkers(name: string, version: string, workers: number): string;
  /** `{"status"}` of a synchronous scale call whose workers all started. */
  scaled(name: string, workers: number): string;
  /** The status of a synchronous call that returned with workers still starting (MMS 210, TorchServe 206). */
  readonly partialStatus: number;
  /** The message of a register or scale call whose workers failed to start (`cause`: the first worker's error). */
  startFailed(name: string, version: string, cause: MarError | undefined): string;
  /** How a register call's url fails; the texts and statuses of each server (ModelArchive#downloadModel). */
  readonly urlErrors: UrlErrors;

  // --- inference API -------------------------------------------------------------------------------------
  /** /ping's status text and code for the models' worker counts. */
  ping(models: readonly ModelHealth[]): { status: string; code: number };
  /** The 503 message when a model has no worker (or a full queue) for a request; null keeps the runtime's (MMS's) text. */
  readonly noWorker: ((name: string) => string) | null;
}
