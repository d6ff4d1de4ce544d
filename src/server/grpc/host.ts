/**
 * One gRPC listener (@grpc/grpc-js) serving a list of services: the inference listener (grpc_inference_port) serves
 * the Open Inference Protocol, and more services can be added to either listener (services.ts). Limits as the HTTP
 * listeners': max_request_size for a received message, max_response_size for a sent one.
 */
import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { MarError } from '../../errors.js';
import type { GrpcAddress } from '../config-protocols.js';

/** A service to serve: its full name (for logs), definition (from proto.ts) and implementation. */
export interface GrpcService {
  readonly name: string;
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

export interface GrpcHostOptions {
  /** Which key the listener's config names: grpc_inference_port or grpc_management_port. */
  api: 'inference' | 'management';
  address: GrpcAddress;
  services: readonly GrpcService[];
  /** Largest message received / sent (bytes). */
  maxReceiveBytes: number;
  maxSendBytes: number;
}

export class GrpcHost {
  readonly api: 'inference' | 'management';
  readonly services: readonly GrpcService[];
  readonly #address: GrpcAddress;
  readonly #server: Server;
  #boundUrl: string | null = null;

  constructor(o: GrpcHostOptions) {
    this.api = o.api;
    this.services = o.services;
    this.#address = o.address;
    this.#server = new Server({
      'grpc.max_receive_message_length': o.maxReceiveBytes,
      'grpc.max_send_message_length': o.maxSendBytes,
    });
    for (const s of o.services) this.#server.addService(s.definition, s.implementation);
  }

  /** `host:port` as bound (the real port when 0 was asked for), after listen(). */
  get url(): string {
    const { host, port } = this.#address;
    return this.#boundUrl ?? `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  async listen(): Promise<string> {
    const { host, port, tls } = this.#address;
    const hostPart = host.includes(':') ? `[${host}]` : host;
    const creds = tls
      ? ServerCredentials.createSsl(null, [{ private_key: tls.key, cert_chain: tls.cert }], false)
      : ServerCredentials.createInsecure();
    const bound = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(`${hostPart}:${port}`, creds, (err, p) => {
        if (err) {
          const inUse = /EADDRINUSE|address already in use/i.test(err.message);
          reject(
            new MarError(
              'INPUT_INVALID',
              `cannot listen for gRPC on ${hostPart}:${port}: ${inUse ? 'address already in use' : err.message}; change grpc_${this.api}_port or grpc_${this.api}_address`,
              { cause: err },
            ),
          );
        } else resolve(p);
      });
    });
    this.#boundUrl = `${hostPart}:${bound}`;
    return this.#boundUrl;
  }

  /** Stops accepting calls, lets calls in flight finish within graceMs, then cancels what is left. */
  async close(graceMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
