/**
 * Which gRPC services each listener serves: the inference listener (grpc_inference_port) the Open Inference Protocol
 * and TorchServe's inference.proto, the management listener (grpc_management_port) TorchServe's management.proto.
 */
import type { ApiContext } from '../api-context.js';
import type { ServerConfig } from '../config.js';
import type { GrpcService } from './host.js';
import { GrpcHost } from './host.js';
import { oipService } from './oip-service.js';
import { torchserveInferenceService } from './torchserve-inference.js';
import { torchserveManagementService } from './torchserve-management.js';

export function grpcServices(api: ApiContext): { inference: GrpcService[]; management: GrpcService[] } {
  return { inference: [oipService(api), torchserveInferenceService(api)], management: [torchserveManagementService(api)] };
}

/** The gRPC listeners the configuration asks for (grpc_inference_port, grpc_management_port). */
export function grpcHosts(api: ApiContext): GrpcHost[] {
  const c: ServerConfig = api.config;
  const services = grpcServices(api);
  const hosts: GrpcHost[] = [];
  for (const kind of ['inference', 'management'] as const) {
    const address = kind === 'inference' ? c.grpcInference : c.grpcManagement;
    if (address === null) continue;
    hosts.push(
      new GrpcHost({ api: kind, address, services: services[kind], maxReceiveBytes: c.maxRequestSize, maxSendBytes: c.maxResponseSize }),
    );
  }
  return hosts;
}
