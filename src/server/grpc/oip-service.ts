/**
 * The Open Inference Protocol's GRPCInferenceService (proto/open_inference_grpc.proto): each method translates its
 * message to a data-plane call (oip/dataplane.ts) and back, as the REST routes do.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ApiContext } from '../api-context.js';
import { modelMetadata, modelReady, serverMetadata, serverReady, v2Infer } from '../oip/dataplane.js';
import { required, unary } from './calls.js';
import type { GrpcService } from './host.js';
import type { ModelInferRequestMessage } from './oip-codec.js';
import { fromModelInferRequest, toModelInferResponse } from './oip-codec.js';
import { serviceDefinition } from './proto.js';

export const OIP_PROTO = 'open_inference_grpc.proto';
export const OIP_SERVICE = 'inference.GRPCInferenceService';

interface NameVersion {
  name: string;
  version: string;
}

/** The service for the gRPC inference listener. Liveness and readiness need no key (probes carry none). */
export function oipService(api: ApiContext): GrpcService {
  const implementation: UntypedServiceImplementation = {
    ServerLive: unary(api, { key: null }, () => ({ live: true })),
    ServerReady: unary(api, { key: null }, () => ({ ready: serverReady(api).ready })),
    ModelReady: unary(api, { key: 'inference' }, (r: NameVersion) => ({ ready: modelReady(api, required(r.name, 'name'), r.version) })),
    ServerMetadata: unary(api, { key: 'inference' }, () => serverMetadata()),
    ModelMetadata: unary(api, { key: 'inference' }, (r: NameVersion) => {
      const m = modelMetadata(api, required(r.name, 'name'), r.version);
      return { ...m, properties: {} };
    }),
    ModelInfer: unary(api, { key: 'inference' }, async (r: ModelInferRequestMessage, call) => {
      const name = required(r.model_name, 'model_name');
      const req = fromModelInferRequest(r);
      const res = await v2Infer(api, { name, ...(r.model_version !== '' ? { version: r.model_version } : {}), protocol: 'v2' }, req, call);
      return toModelInferResponse(req, res);
    }),
  };
  return { name: OIP_SERVICE, definition: serviceDefinition(OIP_PROTO, OIP_SERVICE), implementation };
}
