import type { ServerResponse } from 'node:http';
import type { ApiContext } from '../api-context.js';
import type { ParsedUrl } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { notFound, sendResponse } from '../responses.js';

/** TorchServe PrometheusMetricsRequestHandler#handleRequest: which paths the metrics API claims. */
export function isMetricsRequest(segments: readonly string[]): boolean {
  return segments.length >= 2 && segments[1] === 'metrics';
}

/**
 * `GET /metrics[?name[]=a&name[]=b]`: every metric, or the families named, in Prometheus text format 0.0.4 (TorchServe's
 * metrics API; empty in metrics_mode=log). Any other path of the metrics listener is 404.
 */
export async function handleMetrics(api: ApiContext, res: ServerResponse, rc: ResponseContext, url: ParsedUrl): Promise<void> {
  if (api.metrics === null || !isMetricsRequest(url.segments)) throw notFound();
  const body = await api.metrics.exposition(url.query.getAll('name[]'));
  sendResponse(res, rc, 200, 'OK', api.metrics.registry.contentType, body);
}
