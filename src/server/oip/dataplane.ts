/**
 * The KServe data plane over the model registry: liveness, readiness, metadata and inference as the KServe v1 and
 * Open Inference Protocol front ends (REST and gRPC) all answer them. The adapters only translate their transport
 * to these calls and back; every decision they share (which version, is it ready, which envelope) is made here.
 */

import type { InferenceRequest, PredictionResult } from '../../runtime/protocol.js';
import { TOOL_NAME, TOOL_VERSION } from '../../util/package-info.js';
import type { ApiContext } from '../api-context.js';
import type { ModelEntry } from '../model-registry.js';
import { runPrediction } from '../prediction.js';
import { isModelReady, serverReadiness } from '../readiness.js';
import type { EnvelopeName, Protocol } from './envelope.js';
import {
  checkEnvelope,
  envelopeFor,
  itemOutputs,
  itemOutputsWithFloats,
  itemsRequest,
  v1Answer,
  v1Instances,
  v2Items,
  v2Outputs,
  v2RequestJson,
} from './envelope.js';
import type { InferRequest, InferResponse } from './v2-json.js';
import { formatRestResponse, parseResponseObject, parseRestRequest } from './v2-json.js';

/** One call's own facts: the request id (also `x-request-id`), the client's headers, and how to withdraw it. */
export interface CallContext {
  requestId: string;
  /** Request headers (HTTP) or metadata (gRPC) the handler's context shows. */
  headers: Array<[string, string]>;
  /** Receives the way to withdraw the request while it waits, then null (see runPrediction). */
  onCancel?: (cancel: (() => void) | null) => void;
}

/** The Open Inference Protocol extensions this server implements (the binary tensor data extension). */
export const EXTENSIONS = ['binary_tensor_data'] as const;

/** `$metadata_server_response` / ServerMetadataResponse. */
export function serverMetadata(): { name: string; version: string; extensions: string[] } {
  return { name: TOOL_NAME, version: TOOL_VERSION, extensions: [...EXTENSIONS] };
}

/** ServerReady and /v2/health/ready: every startup model registered and has its minimum workers up. */
export function serverReady(api: ApiContext): { ready: boolean; reason: string } {
  return serverReadiness(api.registry, api.startup);
}

/** The model version a request names (its default version when none, or ''): 404 MarErrors when unknown. */
export function findModel(api: ApiContext, name: string, version?: string): ModelEntry {
  return api.registry.find(name, version === '' ? undefined : version);
}

/** ModelReady, /v2/models/{m}[/versions/{v}]/ready and GET /v1/models/{m}: 404 for an unknown model. */
export function modelReady(api: ApiContext, name: string, version?: string): boolean {
  return isModelReady(findModel(api, name, version));
}

/** `$metadata_model_response`: every version a client may name; tensors are not known before a handler runs. */
export function modelMetadata(
  api: ApiContext,
  name: string,
  version?: string,
): { name: string; versions: string[]; platform: string; inputs: never[]; outputs: never[] } {
  const entry = findModel(api, name, version);
  return {
    name: entry.name,
    versions: api.registry.versions(entry.name).map((e) => e.version),
    platform: `mar-tools ${entry.model.runtime}`,
    inputs: [],
    outputs: [],
  };
}

/** Registered model names (`GET /v1/models`, `GET /v2/models`). */
export function modelNames(api: ApiContext): string[] {
  return api.registry.names();
}

function withExplain(headers: Array<[string, string]>, explain: boolean): Array<[string, string]> {
  // TorchServe adds "explain: False" to every KServe request, then "explain: True" for :explain (the last wins)
  return explain ? [...headers, ['explain', 'True']] : [...headers, ['explain', 'False']];
}

/**
 * KServe v1 `:predict` / `:explain` (and a TorchServe route when service_envelope=kserve): with the kserve envelope
 * the handler gets the instances and the answer is `{"predictions": [...]}`; with `none` it gets the body as
 * /predictions passes it and its answer goes back as it is.
 */
export async function v1Predict(
  api: ApiContext,
  target: { name: string; version?: string; protocol: Protocol },
  body: Buffer,
  contentType: string | null,
  explain: boolean,
  call: CallContext,
): Promise<PredictionResult> {
  const entry = findModel(api, target.name, target.version);
  const envelope = envelopeFor(api.config.serviceEnvelope, target.protocol);
  checkEnvelope(envelope, 'v1', entry.name);
  const headers = withExplain(call.headers, explain);
  if (envelope === 'none') {
    const input: InferenceRequest = { requestId: call.requestId, headers, params: [{ name: 'body', contentType, value: body }] };
    return predict(api, entry, input, target, call);
  }
  const result = await predict(api, entry, itemsRequest(call.requestId, headers, v1Instances(body)), target, call);
  const outputs = itemOutputs(result);
  return {
    ...result,
    statusCode: 200,
    reasonPhrase: '',
    contentType: 'application/json',
    headers: withoutContentType(result.headers),
    body: v1Answer(outputs, explain),
  };
}

/**
 * Open Inference Protocol inference (REST and gRPC; a TorchServe route when service_envelope=kservev2). The kservev2
 * envelope hands the handler one dict per input tensor and turns its outputs into tensors; `none` hands it the
 * request's JSON and reads its answer as an inference response. `rawJson`: the client's own JSON body, passed to a
 * `none` handler as it came when there was no binary data.
 */
export async function v2Infer(
  api: ApiContext,
  target: { name: string; version?: string; protocol: Protocol },
  req: InferRequest,
  call: CallContext,
  rawJson: Buffer | null = null,
): Promise<InferResponse> {
  const entry = findModel(api, target.name, target.version);
  const envelope: EnvelopeName = envelopeFor(api.config.serviceEnvelope, target.protocol);
  checkEnvelope(envelope, 'v2', entry.name);
  const headers = withExplain(call.headers, false);
  const id = req.id ?? call.requestId;
  if (envelope === 'none') {
    const value = rawJson ?? v2RequestJson(req, entry.name);
    const input: InferenceRequest = {
      requestId: call.requestId,
      headers,
      params: [{ name: 'body', contentType: 'application/json', value }],
    };
    const result = await predict(api, entry, input, target, call);
    let answer: unknown;
    try {
      answer = JSON.parse(itemText(result));
    } catch {
      answer = undefined;
    }
    return parseResponseObject(answer, { model_name: entry.name, model_version: entry.version, id });
  }
  const result = await predict(api, entry, itemsRequest(call.requestId, headers, v2Items(req)), target, call);
  const { outputs, floats } = itemOutputsWithFloats(result);
  return { model_name: entry.name, model_version: entry.version, id, outputs: v2Outputs(outputs, req.inputs, floats) };
}

/**
 * A TorchServe route (/predictions, /invocations, gRPC Predictions) when service_envelope names a KServe envelope: as
 * in TorchServe, every request of the model goes through it, so the body must be a KServe v1 (`kserve`) or v2
 * (`kservev2`, binary extension included: `headerLength` is Inference-Header-Content-Length) request, answered in the
 * same protocol.
 */
export async function envelopedPredict(
  api: ApiContext,
  target: { name: string; version?: string | undefined },
  body: Buffer,
  contentType: string | null,
  headerLength: string | undefined,
  call: CallContext,
): Promise<PredictionResult> {
  const where = {
    name: target.name,
    ...(target.version !== undefined ? { version: target.version } : {}),
    protocol: 'torchserve' as const,
  };
  if (api.config.serviceEnvelope === 'kserve') return v1Predict(api, where, body, contentType, false, call);
  const infer = parseRestRequest(body, headerLength);
  const out = formatRestResponse(infer, await v2Infer(api, where, infer, call, headerLength === undefined ? body : null));
  return {
    requestId: call.requestId,
    statusCode: 200,
    reasonPhrase: '',
    contentType: out.contentType,
    headers: out.jsonLength === null ? [] : [['Inference-Header-Content-Length', String(out.jsonLength)]],
    body: out.body,
  };
}

function predict(
  api: ApiContext,
  entry: ModelEntry,
  input: InferenceRequest,
  target: { name: string; version?: string },
  call: CallContext,
): Promise<PredictionResult> {
  return runPrediction(api, entry, input, {
    modelName: target.name,
    version: target.version,
    ...(call.onCancel ? { onCancel: call.onCancel } : {}),
  });
}

/** A `none` handler's answer as text; a status >= 400 it chose is its error (itemOutputs' rule). */
function itemText(result: PredictionResult): string {
  if (result.statusCode >= 400) itemOutputs(result);
  return result.body.toString('utf8');
}

function withoutContentType(headers: Array<[string, string]>): Array<[string, string]> {
  return headers.filter(([k]) => k.toLowerCase() !== 'content-type');
}
