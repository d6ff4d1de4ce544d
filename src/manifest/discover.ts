/**
 * Where a model's manifest is: the one discovery that inspect/verify (over an archive reader), the model loader
 * (over a directory) and the Node worker (over the model dir) share. As MMS and TorchServe look for it:
 * MAR-INF/MANIFEST.json, else a legacy 0.x MANIFEST.json at the root, migrated to the 1.0 shape.
 */

import { LEGACY_MANIFEST_PATH, MANIFEST_PATH, type ManifestKind, migrateLegacyManifest, parseManifestJson } from './manifest.js';

/** Reads a path relative to the model (`MAR-INF/MANIFEST.json`); null when there is no such file. */
export type ReadIfExists = (path: string) => Promise<Buffer | null>;

export type DiscoveredManifest =
  | { kind: 'none' }
  | {
      kind: ManifestKind;
      /** The manifest's path in the model. */
      path: string;
      /**
       * The parsed JSON (for a legacy file: migrated to the 1.0 shape), not yet checked for shape: each caller
       * has its own rule for a manifest that is not an object. Undefined when `error` is set.
       */
      json?: unknown;
      /** Why the file found could not be used: it could not be read, or it is not JSON (MANIFEST_INVALID). */
      error?: Error;
    };

/**
 * Finds, reads and parses the manifest. Never throws: a read or parse failure is returned in `error`, so a
 * caller can report it (inspect), throw it (the model loader) or ignore it (the worker). `label` names the
 * file in messages (default: its path in the model).
 */
export async function discoverManifest(read: ReadIfExists, label: (path: string) => string = (p) => p): Promise<DiscoveredManifest> {
  for (const [path, kind] of [
    [MANIFEST_PATH, 'mar-inf'],
    [LEGACY_MANIFEST_PATH, 'legacy'],
  ] as const) {
    let bytes: Buffer | null;
    try {
      bytes = await read(path);
      if (bytes === null) continue;
      const parsed = parseManifestJson(bytes, label(path));
      return { kind, path, json: kind === 'legacy' ? migrateLegacyManifest(parsed) : parsed };
    } catch (err) {
      return { kind, path, error: err instanceof Error ? err : new Error(String(err)) };
    }
  }
  return { kind: 'none' };
}
