/**
 * TorchServe's side of the dialect table (dialect.ts), from TorchServe 0.12's frontend: ConfigManager (keys,
 * defaults, TS_ variables, `$$VAR$$`), ApiUtils (status texts), InferenceRequestHandler (/ping).
 */

import { MarError } from '../../errors.js';
import type { Dialect } from './dialect.js';

/**
 * The keys a `TS_<KEY>` environment variable overrides when enable_envvars_config=true: every key TorchServe
 * declares with a TS_ constant (the variable is the constant's name, so `ts_open_inference_protocol` is
 * TS_OPEN_INFERENCE_PROTOCOL). allowed_urls only with use_env_allowed_urls=true, as TorchServe.
 */
export const TORCHSERVE_ENV_KEYS = [
  'debug',
  'inference_address',
  'management_address',
  'metrics_address',
  'load_models',
  'blacklist_env_vars',
  'default_workers_per_model',
  'default_response_timeout',
  'default_startup_timeout',
  'unregister_model_timeout',
  'number_of_netty_threads',
  'netty_client_threads',
  'job_queue_size',
  'number_of_gpu',
  'metrics_config',
  'metrics_mode',
  'model_metrics_auto_detect',
  'disable_system_metrics',
  'ipex_enable',
  'cpu_launcher_enable',
  'cpu_launcher_args',
  'ipex_gpu_enable',
  'async_logging',
  'cors_allowed_origin',
  'cors_allowed_methods',
  'cors_allowed_headers',
  'decode_input_request',
  'keystore',
  'keystore_pass',
  'keystore_type',
  'certificate_file',
  'private_key_file',
  'max_request_size',
  'max_response_size',
  'limit_max_image_pixels',
  'default_service_handler',
  'service_envelope',
  'model_server_home',
  'model_store',
  'prefer_direct_buffer',
  'allowed_urls',
  'install_py_dep_per_model',
  'enable_metrics_api',
  'grpc_inference_address',
  'grpc_management_address',
  'grpc_inference_port',
  'grpc_management_port',
  'grpc_inference_max_connection_age_ms',
  'grpc_management_max_connection_age_ms',
  'grpc_inference_max_connection_age_grace_ms',
  'grpc_management_max_connection_age_grace_ms',
  'enable_grpc_ssl',
  'initial_worker_port',
  'initial_distribution_port',
  'workflow_store',
  'cpp_log_config',
  'ts_open_inference_protocol',
  'token_expiration_min',
  'ts_header_key_sequence_id',
  'ts_header_key_sequence_start',
  'ts_header_key_sequence_end',
  'disable_token_authorization',
  'enable_model_api',
] as const;

export const TORCHSERVE_DIALECT: Dialect = {
  name: 'torchserve',
  product: 'TorchServe',
  configFileEnv: 'TS_CONFIG_FILE',
  envPrefix: 'TS_',
  envKeys: TORCHSERVE_ENV_KEYS,
  envGuardedKeys: { allowed_urls: 'use_env_allowed_urls' },
  envNeedsOptIn: true,
  envBeatsCommandLine: true,
  // TorchServe's pattern: any run of non-'$' characters between $$ and $$
  envReference: /\$\$([^$]+[^$])\$\$/g,
  unsetEnvReference: 'error',
  defaults: {
    metrics_address: 'http://127.0.0.1:8082',
    metrics_mode: 'log',
    enable_model_api: 'false',
    disable_token_authorization: 'false',
    // TorchServe's default is file://.*|http(s)?://.*; file:// urls copy any readable file, so they must be allowed explicitly
    allowed_urls: 'http(s)?://.*',
  },
  responseTimeoutUnitSeconds: 1,
  openAllowedUrlsWarning:
    'Your model server can access any http(s) URL to load models. When deploying to production, make sure to limit the set of allowed_urls in config.properties',

  registerChecksHandler: false,
  urlBeforeNameCheck: true,
  versionConflict: (name, version) => new MarError('MODEL_CONFLICT', `Model version ${version} is already registered for model ${name}`),
  describeAsArray: true,
  registered: (name, version) =>
    `Model "${name}" Version: ${version} registered with 0 initial workers. Use scale workers API to add workers for the model.`,
  registeredWithWorkers: (name, version, workers) => `Model "${name}" Version: ${version} registered with ${workers} initial workers`,
  scaled: (name, workers) => `Workers scaled to ${workers} for model: ${name}`,
  partialStatus: 206,
  // TorchServe's text, then the first worker's own error (a handler that fails to import says why)
  startFailed: (name, version, cause) =>
    `Failed to start workers for model ${name} version: ${version}${cause ? `: ${cause.message}` : ''}`,
  urlErrors: {
    empty: () => new MarError('MODEL_NOT_FOUND', 'empty url'),
    // a url java.net.URL cannot parse fails inside the download: DownloadArchiveException, 400
    malformed: (url) => new MarError('DOWNLOAD_FAILED', `Failed to download archive from: ${url}`),
    downloadFailed: (url, _status, why, cause) =>
      new MarError('DOWNLOAD_FAILED', `Failed to download archive from: ${url}${why ? ` (${why})` : ''}`, { cause }),
    exists: (fileName) => new MarError('INTERNAL', `Model file already exists ${fileName}`),
    notInStore: (url) => new MarError('MODEL_NOT_FOUND', `Model not found at: ${url}`),
  },

  ping(models) {
    const healthy = models.every((m) => m.running >= m.configured);
    return healthy ? { status: 'Healthy', code: 200 } : { status: 'Unhealthy', code: 500 };
  },
  noWorker: (name) =>
    `Model "${name}" has no worker to serve inference request. Please use scale workers API to add workers. ` +
    'If this is a sequence inference, please check if it is closed, or expired; or exceeds maxSequenceJobQueueSize',
};
