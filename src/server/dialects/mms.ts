/** MMS's side of the dialect table (dialect.ts): the behaviour `model-server` has always had. */

import { MarError } from '../../errors.js';
import type { Dialect } from './dialect.js';

export const MMS_DIALECT: Dialect = {
  name: 'mms',
  product: 'MMS',
  configFileEnv: 'MMS_CONFIG_FILE',
  envPrefix: 'MMS_',
  // MMS_<KEY> for every key config.ts reads (ours: MMS itself needs enable_envvars_config)
  envKeys: null,
  envGuardedKeys: {},
  envNeedsOptIn: false,
  envBeatsCommandLine: false,
  envReference: /\$\$([A-Za-z_][A-Za-z0-9_]*)\$\$/g,
  unsetEnvReference: 'empty',
  defaults: {
    // MMS has neither a metrics API, nor tokens, nor snapshots; remote urls are refused until allowed_urls is set
    metrics_address: '',
    metrics_mode: 'log',
    enable_model_api: 'true',
    disable_token_authorization: 'true',
    allowed_urls: '',
  },
  responseTimeoutUnitSeconds: 60,
  openAllowedUrlsWarning: null,

  registerChecksHandler: true,
  urlBeforeNameCheck: false,
  versionConflict: (name) => new MarError('MODEL_CONFLICT', `Model ${name} is already registered.`),
  describeAsArray: false,
  registered: (name) => `Model "${name}" registered`,
  registeredWithWorkers: () => 'Workers scaled',
  scaled: () => 'Workers scaled',
  partialStatus: 210,
  startFailed: () => 'Failed to start workers',
  urlErrors: {
    empty: null,
    malformed: (url) => new MarError('MODEL_NOT_FOUND', `Invalid model url: ${url}`),
    downloadFailed: (url, status, why, cause) =>
      new MarError(
        'DOWNLOAD_FAILED',
        `Failed to download model from: ${url}${status === null ? '' : `, code: ${status}`}${why ? ` (${why})` : ''}`,
        {
          cause,
        },
      ),
    exists: (fileName) => new MarError('MODEL_CONFLICT', `Model file already exists ${fileName}`),
    notInStore: (url) => new MarError('MODEL_NOT_FOUND', `Model not found in model store: ${url}`),
  },

  ping(models) {
    let running = 0;
    let configured = 0;
    for (const m of models) {
      running += m.running;
      configured += m.configured;
    }
    const status = running > 0 && running < configured ? 'Partial Healthy' : running === 0 && configured > 0 ? 'Unhealthy' : 'Healthy';
    return { status, code: 200 };
  },
  noWorker: null,
};
