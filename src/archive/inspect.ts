/**
 * inspectArchive: what is in a model archive, from the cheapest reads possible (a zip's central directory
 * plus its manifest entry). Manifest problems are reported, never fatal.
 */
import { MarError } from '../errors.js';
import { discoverManifest } from '../manifest/discover.js';
import { MANIFEST_PATH, type Manifest } from '../manifest/manifest.js';
import { validateManifest } from '../manifest/validate.js';
import { checkManifestSize } from './limits.js';
import { type ArchiveKind, type ArchiveReader, type EntryMethod, type EntryType, withArchive } from './read.js';

export type InspectManifestKind = 'mar-inf' | 'legacy' | 'none';

export interface LoadedManifest {
  kind: InspectManifestKind;
  /** The manifest as a server would use it (a legacy one migrated to the 1.0 shape), or null. */
  manifest: Manifest | null;
  /** Why the manifest entry could not be used (unreadable or not JSON), if it exists but failed. */
  error?: string;
  /** Schema problems, one line each (not fatal). */
  schemaErrors: string[];
}

/** Finds and parses the manifest the way the servers look for it: MAR-INF/MANIFEST.json, then a legacy root one. */
export async function loadManifest(reader: ArchiveReader): Promise<LoadedManifest> {
  const found = await discoverManifest(async (path) => {
    const entry = reader.find(path);
    if (!entry) return null;
    // manifests are tiny: a huge one is refused before it is read (limits.ts)
    checkManifestSize(`${reader.path}: ${path}`, entry.size, reader.limits, reader.limitHint);
    return reader.readEntry(entry, reader.limits.maxManifestBytes);
  });
  if (found.kind === 'none') return { kind: 'none', manifest: null, schemaErrors: [] };
  const { kind, json } = found;
  if (found.error) return { kind, manifest: null, error: found.error.message, schemaErrors: [] };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return { kind, manifest: null, error: `${found.path} is not a JSON object`, schemaErrors: [] };
  }
  return { kind, manifest: json as Manifest, schemaErrors: validateManifest(json).errors };
}

/** A manifest one or more directories down (`model/MAR-INF/MANIFEST.json`): the archive was made from the parent dir. */
export function findNestedManifest(reader: ArchiveReader): string | null {
  const hit = reader.entries().find((e) => e.type === 'file' && e.path.endsWith(`/${MANIFEST_PATH}`));
  return hit ? hit.path : null;
}

export interface InspectEntry {
  path: string;
  type: EntryType;
  size: number;
  compressedSize: number;
  method: EntryMethod;
  mode?: number;
}

export interface InspectReport {
  path: string;
  format: ArchiveKind;
  /** Size of the archive file (sum of file sizes for a directory). */
  archiveBytes: number;
  /** tgz: the single root directory (`<model-name>`), or null when there is none. */
  tgzRoot: string | null;
  manifestKind: InspectManifestKind;
  manifest: Manifest | null;
  manifestError: string | null;
  schemaErrors: string[];
  /** When there is no manifest at the top: one found deeper (the archive was made one directory too high). */
  nestedManifest: string | null;
  modelName: string | null;
  modelVersion: string | null;
  runtime: string | null;
  handler: string | null;
  description: string | null;
  createdOn: string | null;
  archiverVersion: string | null;
  /** Every entry, directories included. */
  entryCount: number;
  fileCount: number;
  /** Sum of uncompressed file sizes. */
  totalSize: number;
  /** Sum of stored (compressed) sizes for zips; the archive file size for a tgz. */
  compressedSize: number;
  /** Number of files per method. */
  methods: Record<string, number>;
  entries: InspectEntry[];
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null;
}

export async function inspectReader(reader: ArchiveReader): Promise<InspectReport> {
  const loaded = await loadManifest(reader);
  const m = loaded.manifest;
  const model = (m && typeof m.model === 'object' && m.model !== null ? m.model : {}) as Record<string, unknown>;
  const entries: InspectEntry[] = [];
  const methods: Record<string, number> = {};
  let fileCount = 0;
  let totalSize = 0;
  let compressedSize = 0;
  for (const e of reader.entries()) {
    if (reader.kind === 'tgz' && e.path === '' && e.isDirectory) continue; // the root dir itself
    const item: InspectEntry = { path: e.path, type: e.type, size: e.size, compressedSize: e.compressedSize, method: e.method };
    if (e.mode !== undefined) item.mode = e.mode;
    entries.push(item);
    if (e.type !== 'file') continue;
    fileCount++;
    totalSize += e.size;
    compressedSize += e.compressedSize;
    methods[e.method] = (methods[e.method] ?? 0) + 1;
  }
  if (reader.kind === 'tgz') compressedSize = reader.archiveBytes;
  return {
    path: reader.path,
    format: reader.kind,
    archiveBytes: reader.archiveBytes,
    tgzRoot: reader.tgzRoot,
    manifestKind: loaded.kind,
    manifest: m,
    manifestError: loaded.error ?? null,
    schemaErrors: loaded.schemaErrors,
    nestedManifest: loaded.kind === 'none' ? findNestedManifest(reader) : null,
    modelName: str(model['modelName']),
    modelVersion: str(model['modelVersion']),
    runtime: m ? str(m.runtime) : null,
    handler: str(model['handler']),
    description: str(model['description']) ?? (m ? str(m['description']) : null),
    createdOn: m ? str(m.createdOn) : null,
    archiverVersion: m ? str(m.archiverVersion) : null,
    entryCount: entries.length,
    fileCount,
    totalSize,
    compressedSize,
    methods,
    entries,
  };
}

/** Inspects a .mar, .tar.gz or unpacked model directory. Throws only when the archive cannot be read at all. */
export async function inspectArchive(path: string): Promise<InspectReport> {
  try {
    return await withArchive(path, inspectReader);
  } catch (err) {
    if (err instanceof MarError) throw err;
    throw new MarError('ARCHIVE_CORRUPT', `cannot inspect ${path}: ${(err as Error)?.message ?? err}`, { cause: err });
  }
}
