/**
 * Which gRPC services each listener serves. The inference listener (grpc_inference_port) serves the Open Inference
 * Protocol; a service for either listener (TorchServe's inference.proto and management.proto) is added here.
 */
import type { ApiContext } from '../api-context.js';
import type { ServerConfig } from '../config.js';
import type { GrpcService } from './host.js';
import { GrpcHost } from './host.js';
import { oipService } from './oip-service.js';

export function grpcServices(api: ApiContext): { inference: GrpcService[]; management: GrpcService[] } {
  return { inference: [oipService(api)], management: [] };
}

/** The gRPC listeners the configuration asks for (a port key set and at least one service for it). */
export function grpcHosts(api: ApiContext, log: (msg: string) => void): GrpcHost[] {
  const c: ServerConfig = api.config;
  const services = grpcServices(api);
  const hosts: GrpcHost[] = [];
  for (const kind of ['inference', 'management'] as const) {
    const address = kind === 'inference' ? c.grpcInference : c.grpcManagement;
    if (address === null) continue;
    if (services[kind].length === 0) {
      log(`grpc_${kind}_port is set but mar-tools has no gRPC ${kind} service yet; no gRPC ${kind} listener`);
      continue;
    }
    hosts.push(
      new GrpcHost({ api: kind, address, services: services[kind], maxReceiveBytes: c.maxRequestSize, maxSendBytes: c.maxResponseSize }),
    );
  }
  return hosts;
}
