import { MarError } from '../errors.js';

export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_\-.]*$/;

export interface ManifestModel {
  modelName: string;
  serializedFile?: string;
  handler: string;
  modelFile?: string;
  modelVersion?: string;
  description?: string;
  requirementsFile?: string;
  configFile?: string;
  [key: string]: unknown;
}

export interface Manifest {
  createdOn?: string;
  runtime: string;
  model: ManifestModel;
  archiverVersion?: string;
  modelServerVersion?: string;
  implementationVersion?: string;
  specificationVersion?: string;
  [key: string]: unknown;
}

/** Where the manifest in an archive came from: ours/TorchServe/MMS 1.0, or a migrated legacy 0.x one. */
export type ManifestKind = 'mar-inf' | 'legacy';

export const MANIFEST_PATH = 'MAR-INF/MANIFEST.json';
export const LEGACY_MANIFEST_PATH = 'MANIFEST.json';
/** Per-file sha256 and sizes; both Java servers ignore extra MAR-INF files. */
export const DIGESTS_PATH = 'MAR-INF/FILES.sha256';

export interface BuildManifestOptions {
  modelName: string;
  handler: string;
  runtime: string;
  archiverVersion: string;
  /** Creation time; formatted in UTC as TorchServe's `%d/%m/%Y %H:%M:%S`. */
  createdOn: Date;
  modelVersion?: string;
  description?: string;
  serializedFile?: string;
  modelFile?: string;
  requirementsFile?: string;
  configFile?: string;
}

/** TorchServe's `createdOn` format. We use UTC so that SOURCE_DATE_EPOCH gives the same text everywhere. */
export function formatCreatedOn(date: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${p(date.getUTCDate())}/${p(date.getUTCMonth() + 1)}/${p(date.getUTCFullYear(), 4)} ` +
    `${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${p(date.getUTCSeconds())}`
  );
}

/** Builds a manifest that both MMS 1.0 and TorchServe load: the union of their fields, in their key order. */
export function buildManifest(o: BuildManifestOptions): Manifest {
  const model: ManifestModel = { modelName: o.modelName, handler: o.handler };
  // Insert in TorchServe's key order, omitting empty optionals as both tools do.
  const ordered: ManifestModel = { modelName: o.modelName } as ManifestModel;
  if (o.serializedFile) ordered.serializedFile = o.serializedFile;
  ordered.handler = model.handler;
  if (o.modelFile) ordered.modelFile = o.modelFile;
  if (o.modelVersion) ordered.modelVersion = o.modelVersion;
  if (o.description) ordered.description = o.description;
  if (o.requirementsFile) ordered.requirementsFile = o.requirementsFile;
  if (o.configFile) ordered.configFile = o.configFile;
  return {
    createdOn: formatCreatedOn(o.createdOn),
    runtime: o.runtime,
    model: ordered,
    archiverVersion: o.archiverVersion,
    modelServerVersion: '1.0',
    implementationVersion: '1.0',
    specificationVersion: '1.0',
  };
}

/** `json.dumps(indent=2)` layout, as the reference archivers write it (no trailing newline). */
export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, 2), 'utf8');
}

/** Parses manifest bytes; malformed JSON is a MANIFEST_INVALID error naming the source. */
export function parseManifestJson(bytes: Buffer | string, source: string): unknown {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new MarError(
      'MANIFEST_INVALID',
      `${source} is not valid JSON (${(err as Error).message}); rebuild the archive with model-archiver`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Migrates a legacy 0.x root MANIFEST.json (`Model{Model-Name, Service, ...}`) to the 1.0 shape,
 * the way MMS does: specificationVersion 0.1, modelVersion "snapshot".
 */
export function migrateLegacyManifest(legacy: unknown): Manifest {
  const l = (legacy ?? {}) as Record<string, unknown>;
  const m = (l['Model'] ?? {}) as Record<string, unknown>;
  const service = typeof m['Service'] === 'string' ? (m['Service'] as string) : '';
  const model: ManifestModel = {
    modelName: typeof m['Model-Name'] === 'string' ? (m['Model-Name'] as string) : '',
    handler: service,
    modelVersion: 'snapshot',
  };
  if (typeof m['Description'] === 'string') model.description = m['Description'] as string;
  const manifest: Manifest = {
    runtime: 'python',
    model,
    specificationVersion: '0.1',
    implementationVersion: '1.0',
    modelServerVersion: typeof l['Model-Server'] === 'string' ? (l['Model-Server'] as string) : '1.0',
  };
  if (typeof l['Model-Archive-Description'] === 'string') manifest['description'] = l['Model-Archive-Description'];
  if (typeof l['License'] === 'string') manifest['license'] = l['License'];
  const engine = l['Engine'] as Record<string, unknown> | undefined;
  if (engine && typeof engine === 'object') {
    const name = Object.keys(engine)[0];
    if (name) manifest['engine'] = { engineName: name, engineVersion: String(engine[name]) };
  }
  return manifest;
}
