/**
 * The config.properties keys of the KServe protocols and gRPC (TorchServe's names): which request envelope a
 * TorchServe-style handler gets (`service_envelope`, TS_SERVICE_ENVELOPE), and where the gRPC listeners bind
 * (`grpc_inference_port` / `grpc_management_port`, with `grpc_*_address` and `enable_grpc_ssl`).
 */

import { MarError } from '../errors.js';
import type { EnvelopeName } from './oip/envelope.js';
import { ENVELOPES } from './oip/envelope-names.js';
import type { TlsMaterial } from './tls.js';

export const PROTOCOL_CONFIG_KEYS = [
  'service_envelope',
  'grpc_inference_address',
  'grpc_inference_port',
  'grpc_management_address',
  'grpc_management_port',
  'enable_grpc_ssl',
] as const;

/** Where one gRPC listener binds; `tls` when enable_grpc_ssl=true (PEM private_key_file + certificate_file). */
export interface GrpcAddress {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly key: Buffer; readonly cert: Buffer } | null;
}

export interface ProtocolServerConfig {
  /** The envelope every inference request goes through, or null: each route's own (KServe v1 kserve, v2 kservev2). */
  readonly serviceEnvelope: EnvelopeName | null;
  /** The gRPC inference listener (OIP's GRPCInferenceService), or null when grpc_inference_port is not set. */
  readonly grpcInference: GrpcAddress | null;
  /** The gRPC management listener, or null when grpc_management_port is not set. */
  readonly grpcManagement: GrpcAddress | null;
}

function invalid(key: string, value: string, why: string): MarError {
  return new MarError('INPUT_INVALID', `invalid config value ${key}=${JSON.stringify(value)}: ${why}`);
}

function grpcAddress(props: ReadonlyMap<string, string>, api: 'inference' | 'management', tls: GrpcAddress['tls']): GrpcAddress | null {
  const portKey = `grpc_${api}_port`;
  const raw = props.get(portKey)?.trim();
  if (!raw) return null;
  const port = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(port) || port > 65535) throw invalid(portKey, raw, 'expected a port number 0-65535 (0: any free port)');
  const host = props.get(`grpc_${api}_address`)?.trim() || '127.0.0.1';
  if (!/^(\[[0-9a-fA-F:.]+\]|[^\s/:]+|[0-9a-fA-F:]+)$/.test(host)) {
    throw invalid(`grpc_${api}_address`, host, 'expected a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0');
  }
  return { host: host.replace(/^\[(.*)\]$/, '$1'), port, tls };
}

/** Reads the keys; `tls` is the key material config-extended.ts loaded for https addresses. */
export function resolveProtocolConfig(props: ReadonlyMap<string, string>, tls: TlsMaterial | null): ProtocolServerConfig {
  const envelopeRaw = props.get('service_envelope')?.trim() ?? '';
  const envelope = envelopeRaw.toLowerCase();
  if (envelope !== '' && !(ENVELOPES as readonly string[]).includes(envelope)) {
    throw invalid(
      'service_envelope',
      envelopeRaw,
      `expected ${ENVELOPES.join(', ')} (TorchServe's body and json envelopes are not supported)`,
    );
  }
  const sslRaw = props.get('enable_grpc_ssl')?.trim().toLowerCase() ?? 'false';
  if (sslRaw !== 'true' && sslRaw !== 'false' && sslRaw !== '') throw invalid('enable_grpc_ssl', sslRaw, 'expected true or false');
  let grpcTls: GrpcAddress['tls'] = null;
  if (sslRaw === 'true') {
    if (tls?.kind !== 'pem') {
      throw invalid(
        'enable_grpc_ssl',
        sslRaw,
        'gRPC TLS needs private_key_file and certificate_file (PEM), as TorchServe; a keystore is not used for gRPC',
      );
    }
    grpcTls = { key: tls.key, cert: tls.cert };
  }
  return {
    serviceEnvelope: envelope === '' ? null : (envelope as EnvelopeName),
    grpcInference: grpcAddress(props, 'inference', grpcTls),
    grpcManagement: grpcAddress(props, 'management', grpcTls),
  };
}
