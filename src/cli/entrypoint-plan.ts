/**
 * What the container entrypoint starts, decided from a model directory and the environment KServe (or a plain
 * Kubernetes Deployment) gives the container: the kserve-torchserve layout (`<dir>/config/config.properties`,
 * `<dir>/model-store/`), and KServe's variables mapped onto config keys (docs/kubernetes.md#what-the-entrypoint-does):
 *
 * - `PORT` (Knative's: the one port the pod gets traffic on): the HTTP inference port, or the gRPC inference port
 *   when it is the configured gRPC port or PROTOCOL_VERSION is grpc-v2. Without it HTTP listens on 8080, KServe's
 *   port, where the kserve-torchserve wrapper listened (TorchServe itself sat behind it, on 8085 in KServe's configs).
 * - `PROTOCOL_VERSION` (v1, v2, grpc-v2; KServe sets it for a TorchServe runtime): grpc-v2 puts gRPC inference on
 *   PORT, else on 8081, where the wrapper served gRPC v2.
 * - `TS_SERVICE_ENVELOPE` (kserve, kservev2): service_envelope when config.properties does not set it; with
 *   enable_envvars_config=true the config loader applies it already, as TorchServe does.
 * - `MODEL_NAME`: the name of the model when the configuration names none and the store holds exactly one.
 *
 * Pure apart from reading the config file and listing the model store, so tests plan without starting anything.
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';
import { parseProperties } from '../server/config.js';
import { applyEnvOverrides, substituteEnvReferences } from '../server/config-env.js';
import { dialectNamed } from '../server/dialects/index.js';
import type { StartOptions } from './commands/start.js';

/** Where KServe's storage initializer puts the model (and where kserve-torchserve's args point). */
export const DEFAULT_MODEL_DIR = '/mnt/models';
/** KServe's HTTP port (the predictor container's port unless the InferenceService declares another). */
export const KSERVE_HTTP_PORT = 8080;
/** KServe's gRPC port: the kserve-torchserve wrapper served gRPC v2 there. */
export const KSERVE_GRPC_PORT = 8081;
/** TorchServe's default ports (ConfigManager), used when config.properties does not set them. */
const TS_PORTS = { management: 8081, metrics: 8082, grpcInference: 7070, grpcManagement: 7071 } as const;
const PROTOCOL_VERSIONS = ['v1', 'v2', 'grpc-v2'] as const;

/** The entrypoint's command line: a model directory, and TorchServe's flags as kserve-torchserve passes them. */
export interface EntrypointFlags {
  modelDir?: string;
  modelStore?: string;
  tsConfig?: string;
  models?: string[];
  start?: boolean;
  foreground?: boolean;
  configSnapshots?: boolean;
  disableTokenAuth?: boolean;
  enableModelApi?: boolean;
}

export interface EntrypointPlan {
  /** What runStart gets: the foreground server in TorchServe's dialect with the keys below. */
  start: StartOptions;
  /** The keys set from the environment (they win over the file and TS_ variables). */
  properties: Record<string, string>;
  /** One line each: what was found and applied, logged by the server first. */
  notes: string[];
  /** Where the HTTP inference API listens (the health check asks /ping there). */
  inferenceUrl: string;
}

function notFound(message: string): MarError {
  return new MarError('INPUT_NOT_FOUND', message);
}

function invalid(message: string): MarError {
  return new MarError('INPUT_INVALID', message);
}

function isDir(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** A set, non-empty variable (KServe renders an unset label as an empty value). */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

/** config.properties as the server will see it in TorchServe's dialect: `$$VAR$$` replaced, TS_ variables applied. */
function readConfig(file: string | null, env: NodeJS.ProcessEnv): Map<string, string> {
  if (file === null) return new Map();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw notFound(`cannot read config file ${file}: ${describeFsError(err)}`);
  }
  const props = parseProperties(text);
  const dialect = dialectNamed('torchserve');
  substituteEnvReferences(props, env, dialect);
  applyEnvOverrides(props, env, dialect, []);
  return props;
}

/** The port of a `http(s)://host:port` value (null: a unix socket or no port). */
function portOf(url: string | undefined): number | null {
  const m = url === undefined ? null : /^https?:\/\/(?:\[[^\]]*\]|[^:/]+):(\d+)\/?$/i.exec(url.trim());
  return m ? Number(m[1]) : null;
}

function intValue(raw: string | undefined, what: string, def: number): number {
  if (raw === undefined || raw.trim() === '') return def;
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isInteger(n) || n > 65535) throw invalid(`${what}=${JSON.stringify(raw)} is not a port (0-65535)`);
  return n;
}

/** Scheme and host of the inference listener: the config's, else all interfaces (a pod is reached on its IP). */
function inferenceBase(props: ReadonlyMap<string, string>): { scheme: string; host: string } {
  const m = /^(https?):\/\/(\[[^\]]*\]|[^:/]+)/i.exec(props.get('inference_address')?.trim() ?? '');
  return m ? { scheme: m[1]!.toLowerCase(), host: m[2]! } : { scheme: 'http', host: '0.0.0.0' };
}

/** Names of the models the store holds as load_models=all would load them (archives and model directories). */
function storeEntries(store: string): string[] {
  try {
    return readdirSync(store, { withFileTypes: true })
      .filter((e) => !e.name.startsWith('.') && (e.isDirectory() || /\.(mar|model)$/i.test(e.name)))
      .map((e) => e.name)
      .sort();
  } catch (err) {
    throw notFound(`cannot list the model store ${store}: ${describeFsError(err)}`);
  }
}

function snapshotModelNames(raw: string): string[] | null {
  try {
    const models = (JSON.parse(raw) as { models?: Record<string, unknown> }).models;
    return models && typeof models === 'object' ? Object.keys(models) : [];
  } catch {
    return null; // the server reports a bad snapshot itself
  }
}

/**
 * Decides the start: the config file and store of `flags.modelDir` (default $MODEL_DIR, else /mnt/models), then
 * the keys KServe's environment sets. Throws a one-line MarError when the layout or a variable is unusable.
 */
export function planEntrypoint(flags: EntrypointFlags, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): EntrypointPlan {
  const notes: string[] = [];
  const properties: Record<string, string> = {};
  const dir = resolve(cwd, flags.modelDir ?? envValue(env, 'MODEL_DIR') ?? DEFAULT_MODEL_DIR);

  // the layout: config/config.properties (optional) and model-store/ (else the config's model_store)
  let configFile: string | null = null;
  if (flags.tsConfig !== undefined) configFile = resolve(cwd, flags.tsConfig);
  else if (existsSync(join(dir, 'config', 'config.properties'))) configFile = join(dir, 'config', 'config.properties');
  const props = readConfig(configFile, env);
  let store: string | null = null;
  if (flags.modelStore !== undefined) store = resolve(cwd, flags.modelStore);
  else if (isDir(join(dir, 'model-store'))) store = join(dir, 'model-store');
  else if (props.get('model_store')?.trim()) store = resolve(cwd, props.get('model_store')!.trim());
  if (store === null) {
    throw notFound(
      `no model-store/ in ${dir}: give the directory that holds model-store/ and config/config.properties (KServe's storageUri, the kserve-torchserve layout), or --model-store`,
    );
  }
  if (!isDir(store)) throw notFound(`model store ${store} is not a directory; fix --model-store or model_store`);
  notes.push(`Model directory ${dir}: config ${configFile ?? 'none (TorchServe defaults)'}, model store ${store}`);

  // PORT and PROTOCOL_VERSION: which listener gets the pod's traffic
  const protocol = envValue(env, 'PROTOCOL_VERSION');
  if (protocol !== undefined && !(PROTOCOL_VERSIONS as readonly string[]).includes(protocol)) {
    throw invalid(
      `PROTOCOL_VERSION=${JSON.stringify(protocol)}: expected ${PROTOCOL_VERSIONS.join(', ')} (the InferenceService's protocolVersion)`,
    );
  }
  const portRaw = envValue(env, 'PORT');
  const port = portRaw === undefined ? null : intValue(portRaw, 'PORT', 0);
  const configuredGrpc = intValue(props.get('grpc_inference_port'), 'grpc_inference_port', TS_PORTS.grpcInference);
  let httpPort = KSERVE_HTTP_PORT;
  let grpcPort = configuredGrpc;
  if (port !== null && port !== 0 && port === configuredGrpc) {
    notes.push(`PORT=${port} is the gRPC inference port: gRPC takes the pod's traffic, HTTP listens on ${httpPort}`);
  } else if (protocol === 'grpc-v2') {
    if (port !== null && port !== KSERVE_HTTP_PORT) grpcPort = port;
    else {
      grpcPort = KSERVE_GRPC_PORT;
      if (port !== null)
        notes.push(
          `PROTOCOL_VERSION=grpc-v2 with PORT=${port}: declare an h2c port (e.g. ${KSERVE_GRPC_PORT}) in the InferenceService to reach gRPC`,
        );
    }
    notes.push(`PROTOCOL_VERSION=grpc-v2: gRPC inference on port ${grpcPort}, HTTP on ${httpPort}`);
  } else if (port !== null) {
    httpPort = port;
  }
  const { scheme, host } = inferenceBase(props);
  const inferenceUrl = `${scheme}://${host}:${httpPort}`;
  properties['inference_address'] = inferenceUrl;
  notes.push(`inference_address=${inferenceUrl}${port !== null && httpPort === port ? ' (PORT)' : " (KServe's HTTP port)"}`);
  if (grpcPort !== configuredGrpc) properties['grpc_inference_port'] = String(grpcPort);
  // the gRPC inference API is reached like the HTTP one (TorchServe's own default is loopback only)
  if (!props.get('grpc_inference_address')?.trim()) properties['grpc_inference_address'] = host.replace(/^\[|\]$/g, '');
  checkPorts(props, inferenceUrl, httpPort, grpcPort);

  // TS_SERVICE_ENVELOPE: what KServe derived from the protocolVersion
  const envelope = envValue(env, 'TS_SERVICE_ENVELOPE');
  const envvars = props.get('enable_envvars_config')?.trim().toLowerCase() === 'true';
  if (envelope !== undefined && !envvars && !props.get('service_envelope')?.trim()) {
    properties['service_envelope'] = envelope;
    notes.push(`service_envelope=${envelope} (TS_SERVICE_ENVELOPE)`);
  } else if (envelope !== undefined && envvars) {
    notes.push(`service_envelope=${envelope} (TS_SERVICE_ENVELOPE with enable_envvars_config=true)`);
  } else if (envelope !== undefined) {
    notes.push(
      `service_envelope=${props.get('service_envelope')!.trim()} (config.properties; TS_SERVICE_ENVELOPE=${envelope} applies only with enable_envvars_config=true)`,
    );
  }

  // MODEL_NAME, and which models start
  const modelName = envValue(env, 'MODEL_NAME');
  const snapshot = props.get('model_snapshot')?.trim();
  const listed = (flags.models?.length ?? 0) > 0 || Boolean(props.get('load_models')?.trim());
  if (snapshot) {
    const names = snapshotModelNames(snapshot);
    if (modelName !== undefined && names !== null && !names.includes(modelName)) {
      notes.push(`MODEL_NAME=${modelName} is not in model_snapshot (${names.join(', ')}): the snapshot's models are served`);
    }
  } else if (!listed) {
    const entries = storeEntries(store);
    if (entries.length === 0) notes.push(`the model store ${store} is empty: no model is loaded`);
    else if (modelName !== undefined && entries.length === 1) {
      properties['load_models'] = `${modelName}=${entries[0]}`;
      notes.push(`load_models=${properties['load_models']} (MODEL_NAME)`);
    } else {
      properties['load_models'] = 'all';
      notes.push(
        `load_models=all: ${entries.join(', ')}${modelName !== undefined ? ` (MODEL_NAME=${modelName} names one model; the store holds ${entries.length})` : ''}`,
      );
    }
  } else if (modelName !== undefined) {
    notes.push(`MODEL_NAME=${modelName} is not used: load_models names the models`);
  }
  if (flags.start) notes.push('--start: the container entrypoint always runs the server in the foreground');

  return {
    start: {
      dialect: 'torchserve',
      foreground: true,
      ...(configFile !== null ? { config: configFile } : {}),
      modelStore: store,
      ...(flags.models !== undefined ? { models: flags.models } : {}),
      ...(flags.configSnapshots === false ? { noConfigSnapshots: true } : {}),
      ...(flags.disableTokenAuth ? { disableTokenAuth: true } : {}),
      ...(flags.enableModelApi ? { enableModelApi: true } : {}),
      properties,
      notes,
    },
    properties,
    notes,
    inferenceUrl,
  };
}

/** Two listeners on one port would fail the start with EADDRINUSE: say which keys collide instead. */
function checkPorts(props: ReadonlyMap<string, string>, inferenceUrl: string, httpPort: number, grpcPort: number): void {
  const management = props.get('management_address')?.trim();
  const others: Array<[string, number | null]> = [
    // one listener serves both APIs when the addresses are equal
    ['management_address', management === inferenceUrl ? null : management === undefined ? TS_PORTS.management : portOf(management)],
    ['metrics_address', props.has('metrics_address') ? portOf(props.get('metrics_address')) : TS_PORTS.metrics],
    ['grpc_management_port', intValue(props.get('grpc_management_port'), 'grpc_management_port', TS_PORTS.grpcManagement)],
  ];
  const ours: Array<[string, number]> = [
    ['the HTTP inference port', httpPort],
    ['the gRPC inference port', grpcPort],
  ];
  if (httpPort !== 0 && httpPort === grpcPort) {
    throw invalid(`the HTTP and gRPC inference ports are both ${httpPort}: set PORT or grpc_inference_port to another port`);
  }
  for (const [what, p] of ours) {
    for (const [key, q] of others) {
      if (p !== 0 && q === p) {
        const hint = key === 'management_address' ? " (kserve-torchserve's configs use http://0.0.0.0:8085)" : '';
        throw invalid(`${what} ${p} is also ${key}'s port: move ${key} in config.properties${hint}`);
      }
    }
  }
}
