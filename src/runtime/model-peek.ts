/**
 * What a model will need before it is opened (worker-prespawn.ts spawns its workers while it is extracted): the
 * runtime its manifest names, read from a model directory's file or a zip's manifest entry, without extracting.
 */

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { discoverManifest, type ReadIfExists } from '../manifest/discover.js';
import type { CacheSettings } from './extraction-cache.js';

/** What is known of a model before it is opened. */
export interface ModelPeek {
  /** The manifest's `runtime`; undefined when there is none (the default runtime) or it cannot be read cheaply. */
  runtime: string | undefined;
  /** The best stand-in for its model dir: a model directory itself, an archive's extraction already in the cache, else the cwd. */
  standInDir: string;
}

/** Peeks at `source` (a model directory or archive); never throws (openModel reports what is wrong with it). */
export async function peekModel(source: string, cache: CacheSettings = {}): Promise<ModelPeek> {
  const st = await stat(source).catch(() => null);
  if (st?.isDirectory()) return { runtime: await dirRuntime(source), standInDir: source };
  if (!st?.isFile()) return { runtime: undefined, standInDir: process.cwd() };
  // an archive: the cache loads only for one (openModel needs it next anyway)
  const { cachedModelDir } = await import('./extraction-cache.js');
  // in the cache: its manifest on disk (a warm start loads no archive reader, zlib included, before its spawn)
  const cached = await cachedModelDir(source, cache).catch(() => null);
  if (cached !== null) return { runtime: await dirRuntime(cached), standInDir: cached };
  const { detectArchiveKind } = await import('../archive/read.js');
  const kind = await detectArchiveKind(source).catch(() => null);
  return { runtime: kind === 'zip' ? await zipRuntime(source) : undefined, standInDir: process.cwd() };
}

async function dirRuntime(dir: string): Promise<string | undefined> {
  return runtimeOf(await discoverManifest((path) => readFile(join(dir, path)).catch(() => null)).catch(() => ({ kind: 'none' }) as const));
}

/** A zip's manifest entry (its extraction needs the zip reader anyway); a tgz's may be anywhere in its stream: not read. */
async function zipRuntime(source: string): Promise<string | undefined> {
  try {
    const { withArchive } = await import('../archive/read.js');
    return await withArchive(source, async (reader) => {
      const read: ReadIfExists = async (path) => {
        const entry = reader.find(path);
        return entry && entry.size <= reader.limits.maxManifestBytes ? reader.readEntry(entry, reader.limits.maxManifestBytes) : null;
      };
      return runtimeOf(await discoverManifest(read));
    });
  } catch {
    // openModel reports what is wrong with the archive
    return undefined;
  }
}

function runtimeOf(found: Awaited<ReturnType<typeof discoverManifest>> | { kind: 'none' }): string | undefined {
  if (found.kind === 'none' || found.error) return undefined;
  const runtime = (found.json as { runtime?: unknown } | null)?.runtime;
  return typeof runtime === 'string' ? runtime : undefined;
}
