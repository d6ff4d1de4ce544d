/**
 * TorchServe's gRPC inference API (proto/inference.proto, InferenceAPIsService) over the prediction path the HTTP
 * routes use: Ping answers what /ping answers, Predictions what /predictions/{model}[/{version}] answers. The runtime
 * has no streamed replies (a handler answers each request once), so StreamPredictions sends the whole prediction as
 * its one message; StreamPredictions2 answers each request of the client's stream with one message in order.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { GRPC_STATUS, isMarError, MarError } from '../../errors.js';
import type { InferenceRequest, PredictionResult } from '../../runtime/protocol.js';
import type { ApiContext } from '../api-context.js';
import { envelopedPredict, findModel } from '../oip/dataplane.js';
import { runPrediction } from '../prediction.js';
import { pingStatus } from '../readiness.js';
import { toMmsJson } from '../responses.js';
import type { GrpcCall } from './calls.js';
import { bidiStreaming, required, serverStreaming, toServiceError, unary } from './calls.js';
import type { GrpcService } from './host.js';
import { serviceDefinition } from './proto.js';

export const TS_INFERENCE_PROTO = 'inference.proto';
export const TS_INFERENCE_SERVICE = 'org.pytorch.serve.grpc.inference.InferenceAPIsService';

/** PredictionsRequest as proto-loader gives it (map<string, bytes> as an object of Buffers). */
export interface PredictionsRequestMessage {
  model_name: string;
  model_version: string;
  input: Record<string, Buffer>;
  sequenceId: string;
}

interface PredictionResponseMessage {
  prediction?: Buffer;
  sequenceId?: string;
  status?: { code: number; message: string; details: never[] };
}

/**
 * One prediction: each input entry is a parameter of the handler's request (no content type), as TorchServe's gRPC
 * front end builds it; with service_envelope=kserve|kservev2 the `body` (or `data`) entry is the KServe request the
 * envelope reads, as for /predictions. A status >= 400 the handler chose is the call's error.
 */
export async function predictions(api: ApiContext, r: PredictionsRequestMessage, call: GrpcCall): Promise<Buffer> {
  const name = required(r.model_name, 'model_name');
  const version = r.model_version === '' ? undefined : r.model_version;
  const entry = findModel(api, name, version);
  const input = r.input ?? {};
  let result: PredictionResult;
  const envelope = api.config.serviceEnvelope;
  if (envelope === 'kserve' || envelope === 'kservev2') {
    const body = input['body'] ?? input['data'];
    if (body === undefined) {
      throw new MarError('BAD_REQUEST', `service_envelope=${envelope}: put the KServe request in the input entry "body" (or "data")`);
    }
    result = await envelopedPredict(api, { name, version }, body, 'application/json', undefined, call);
  } else {
    const request: InferenceRequest = {
      requestId: call.requestId,
      headers: call.headers,
      params: Object.entries(input).map(([param, value]) => ({ name: param, contentType: null, value })),
    };
    result = await runPrediction(api, entry, request, { modelName: name, version, onCancel: call.onCancel });
  }
  if (result.statusCode >= 400) {
    const text = result.body.toString('utf8');
    throw new MarError('PREDICTION_FAILED', text || `the handler answered ${result.statusCode}`, { httpStatus: result.statusCode });
  }
  return result.body;
}

/** One StreamPredictions2 request's answer: its prediction, or its error as a google.rpc.Status (the stream goes on). */
async function sequenceAnswer(api: ApiContext, r: PredictionsRequestMessage, call: GrpcCall): Promise<PredictionResponseMessage> {
  const sequenceId = r.sequenceId ?? '';
  try {
    if (sequenceId.trim() === '') throw new MarError('BAD_REQUEST', 'Parameter sequenceId is required.');
    return { prediction: await predictions(api, r, call), sequenceId };
  } catch (err) {
    if (isMarError(err) && err.code === 'REQUEST_CANCELLED') throw err;
    const e = toServiceError(err, api.log);
    return { sequenceId, status: { code: e.code ?? GRPC_STATUS.UNKNOWN, message: e.details ?? '', details: [] } };
  }
}

/** The service for the gRPC inference listener; every method needs the inference key, as /ping and /predictions. */
export function torchserveInferenceService(api: ApiContext): GrpcService {
  const implementation: UntypedServiceImplementation = {
    Ping: unary(api, { key: 'inference' }, () => ({ health: toMmsJson({ status: pingStatus(api).status }) })),
    Predictions: unary(api, { key: 'inference' }, async (r: PredictionsRequestMessage, call) => ({
      prediction: await predictions(api, r, call),
    })),
    StreamPredictions: serverStreaming(api, { key: 'inference' }, async (r: PredictionsRequestMessage, call, send) => {
      send({ prediction: await predictions(api, r, call) });
    }),
    StreamPredictions2: bidiStreaming(api, { key: 'inference' }, async (r: PredictionsRequestMessage, call, send) => {
      send(await sequenceAnswer(api, r, call));
    }),
  };
  return { name: TS_INFERENCE_SERVICE, definition: serviceDefinition(TS_INFERENCE_PROTO, TS_INFERENCE_SERVICE), implementation };
}
