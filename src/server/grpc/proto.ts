/**
 * Our .proto files (the package's proto/ folder) loaded for @grpc/grpc-js: one set of loader options, so every
 * service sees messages the same way (64-bit integers as decimal strings, bytes as Buffers, field names as written).
 */
import type { GrpcObject, ServiceDefinition } from '@grpc/grpc-js';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { MarError } from '../../errors.js';
import { packagePath } from '../../util/package-info.js';

/** How messages look to service code: keepCase, longs as String, enums as String, default values, oneof names. */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

const loaded = new Map<string, GrpcObject>();

/** The package object of a proto file in proto/ (loaded once). */
export function loadProto(file: string): GrpcObject {
  let pkg = loaded.get(file);
  if (!pkg) {
    // imports (google/rpc/status.proto) resolve in proto/ too
    pkg = loadPackageDefinition(loadSync(packagePath('proto', file), { ...LOADER_OPTIONS, includeDirs: [packagePath('proto')] }));
    loaded.set(file, pkg);
  }
  return pkg;
}

/** A service's definition by its full name, e.g. `inference.GRPCInferenceService` in open_inference_grpc.proto. */
export function serviceDefinition(file: string, fullName: string): ServiceDefinition {
  let node: unknown = loadProto(file);
  for (const part of fullName.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  const service = (node as { service?: ServiceDefinition } | undefined)?.service;
  if (!service) throw new MarError('INTERNAL', `proto/${file} has no service ${fullName}`);
  return service;
}
