/**
 * What a model will need before it is opened (worker-prespawn.ts spawns its workers while it is extracted): the
 * runtime its manifest names, read from a model directory's file or a zip's manifest entry, without extracting.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { detectArchiveKind, withArchive } from '../archive/read.js';
import { discoverManifest, type ReadIfExists } from '../manifest/discover.js';

/** What is known of a model before it is opened. */
export interface ModelPeek {
  /** The manifest's `runtime`; undefined when there is none (the default runtime) or it cannot be read cheaply. */
  runtime: string | undefined;
  /** The best stand-in for its model dir before extraction: a model directory itself, else the current directory. */
  standInDir: string;
}

/** Peeks at `source` (a model directory or archive); never throws (openModel reports what is wrong with it). */
export async function peekModel(source: string): Promise<ModelPeek> {
  const kind = await detectArchiveKind(source).catch(() => null);
  if (kind === 'dir') return { runtime: await peekRuntime(source, kind), standInDir: source };
  return { runtime: kind === null ? undefined : await peekRuntime(source, kind), standInDir: process.cwd() };
}

async function peekRuntime(source: string, kind: string): Promise<string | undefined> {
  try {
    if (kind === 'dir') return runtimeOf(await discoverManifest((path) => readFile(join(source, path)).catch(() => null)));
    // a tgz's manifest may be anywhere in its stream: not worth a read of the whole archive here
    if (kind !== 'zip') return undefined;
    return await withArchive(source, async (reader) => {
      const read: ReadIfExists = async (path) => {
        const entry = reader.find(path);
        return entry && entry.size <= reader.limits.maxManifestBytes ? reader.readEntry(entry, reader.limits.maxManifestBytes) : null;
      };
      return runtimeOf(await discoverManifest(read));
    });
  } catch {
    // openModel reports what is wrong with the model
    return undefined;
  }
}

function runtimeOf(found: Awaited<ReturnType<typeof discoverManifest>>): string | undefined {
  if (found.kind === 'none' || found.error) return undefined;
  const runtime = (found.json as { runtime?: unknown } | null)?.runtime;
  return typeof runtime === 'string' ? runtime : undefined;
}
