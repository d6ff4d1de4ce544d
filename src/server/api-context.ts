import type { TokenAuthorization } from './auth.js';
import type { ServerConfig } from './config.js';
import type { Dialect } from './dialects/index.js';
import type { ServerLogger } from './logger.js';
import type { ServerMetrics } from './metrics/server-metrics.js';
import type { ModelRegistry } from './model-registry.js';
import type { StartupModels } from './readiness.js';

/** What the route handlers share: the config, the model table, and the models loaded at startup. */
export interface ApiContext {
  readonly config: ServerConfig;
  readonly registry: ModelRegistry;
  /** Names loaded at startup (`/invocations` without model_name uses the only one). */
  readonly startupModels: ReadonlySet<string>;
  /** One log line (server log, stdout). */
  readonly log: (msg: string) => void;
  /** The server's log: `logger.access` records answered requests (access_log.log, JSON lines), null when nothing does. */
  readonly logger: ServerLogger;
  /** TorchServe's metrics when metrics_address is set, else null (MMS: nothing is recorded). */
  readonly metrics: ServerMetrics | null;
  /** The dialect's defaults, texts and status codes (dialects/). */
  readonly dialect: Dialect;
  /** Token authorization, when on (TorchServe's default); null: requests need no key. */
  readonly auth: TokenAuthorization | null;
  /** The models loaded at start and those that failed to, for readiness (readiness.ts). */
  readonly startup: StartupModels;
}
