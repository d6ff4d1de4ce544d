/**
 * TorchServe's gRPC management API (proto/management.proto, ManagementAPIsService) over the operations the HTTP
 * management API runs (management-ops.ts, routes/model-versions.ts). ManagementResponse.msg is what TorchServe puts
 * there: the JSON document HTTP answers (DescribeModel, ListModels), or the status text of HTTP's
 * `{"status": ...}` (RegisterModel, ScaleWorker, SetDefault, UnregisterModel). An int32 left at 0 is "not given".
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { MarError } from '../../errors.js';
import type { ApiContext } from '../api-context.js';
import { listModels, registerModel, scaleWorkers, unregisterModel } from '../management-ops.js';
import type { RangedParam } from '../params.js';
import { rangedInt } from '../params.js';
import { toMmsJson } from '../responses.js';
import { describeModel, setDefaultVersion } from '../routes/model-versions.js';
import { required, unary } from './calls.js';
import type { GrpcService } from './host.js';
import { serviceDefinition } from './proto.js';

export const TS_MANAGEMENT_PROTO = 'management.proto';
export const TS_MANAGEMENT_SERVICE = 'org.pytorch.serve.grpc.management.ManagementAPIsService';

interface NameVersion {
  model_name: string;
  model_version: string;
}

interface RegisterModelMessage {
  batch_size: number;
  handler: string;
  initial_workers: number;
  max_batch_delay: number;
  model_name: string;
  response_timeout: number;
  runtime: string;
  synchronous: boolean;
  url: string;
}

interface ScaleWorkerMessage extends NameVersion {
  max_worker: number;
  min_worker: number;
  synchronous: boolean;
}

/** A ranged int32 field: 0 is "not given" (proto3 cannot tell it from absent), anything else held to its range. */
function ranged(name: RangedParam, value: number): number | undefined {
  return value === 0 ? undefined : rangedInt(name, value);
}

const optional = (text: string): string | undefined => (text === '' ? undefined : text);

/** enable_model_api=false (TorchServe's default) refuses RegisterModel and UnregisterModel, as HTTP's 405. */
function modelApiAllowed(api: ApiContext, method: string): void {
  if (api.config.enableModelApi) return;
  throw new MarError(
    'METHOD_NOT_ALLOWED',
    `${method} is not allowed: enable_model_api is false; set enable_model_api=true in config.properties or start with --enable-model-api`,
  );
}

/** The service for the gRPC management listener; every method needs the management key. */
export function torchserveManagementService(api: ApiContext): GrpcService {
  const key = { key: 'management' } as const;
  const implementation: UntypedServiceImplementation = {
    DescribeModel: unary(api, key, (r: NameVersion) => ({
      msg: toMmsJson(describeModel(api, required(r.model_name, 'model_name'), optional(r.model_version))),
    })),
    ListModels: unary(api, key, (r: { limit: number; next_page_token: number }) => ({
      // limit 0: not given, the default 100 (management.proto)
      msg: toMmsJson(listModels(api, r.limit === 0 ? 100 : r.limit, r.next_page_token)),
    })),
    RegisterModel: unary(api, key, async (r: RegisterModelMessage) => {
      modelApiAllowed(api, 'RegisterModel');
      const answer = await registerModel(api, {
        url: required(r.url, 'url'),
        modelName: optional(r.model_name),
        handler: optional(r.handler),
        runtime: optional(r.runtime),
        batchSize: ranged('batch_size', r.batch_size),
        maxBatchDelayMs: ranged('max_batch_delay', r.max_batch_delay),
        initialWorkers: ranged('initial_workers', r.initial_workers),
        responseTimeoutSeconds: ranged('response_timeout', r.response_timeout),
        synchronous: r.synchronous,
      });
      return { msg: answer.text };
    }),
    ScaleWorker: unary(api, key, async (r: ScaleWorkerMessage) => {
      const minWorkers = ranged('min_worker', r.min_worker) ?? 1;
      const maxWorkers = ranged('max_worker', r.max_worker) ?? minWorkers;
      const name = required(r.model_name, 'model_name');
      const answer = await scaleWorkers(api, name, optional(r.model_version), minWorkers, maxWorkers, r.synchronous);
      return { msg: answer.text };
    }),
    SetDefault: unary(api, key, (r: NameVersion) => ({
      msg: setDefaultVersion(api, required(r.model_name, 'model_name'), required(r.model_version, 'model_version')),
    })),
    UnregisterModel: unary(api, key, async (r: NameVersion) => {
      modelApiAllowed(api, 'UnregisterModel');
      const answer = await unregisterModel(api, required(r.model_name, 'model_name'), optional(r.model_version));
      return { msg: answer.text };
    }),
  };
  return { name: TS_MANAGEMENT_SERVICE, definition: serviceDefinition(TS_MANAGEMENT_PROTO, TS_MANAGEMENT_SERVICE), implementation };
}
