import type { ServerConfig } from '../config.js';

/**
 * What a server's workers do with their [METRICS] lines (launchers.ts LaunchOptions.metrics): drop them when nothing
 * keeps them, send every line when TorchServe's log mode or MMS's metrics_location writes each one, and send their
 * PredictionTime at most every 100 ms when Prometheus keeps only its latest value.
 */
export function workerMetrics(config: ServerConfig): boolean | 'sampled' {
  if (config.metricsAddress !== null) return config.metricsMode === 'prometheus' ? 'sampled' : true;
  return config.metricsLocation !== null;
}
