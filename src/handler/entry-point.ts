/**
 * Entry-point strings as MMS and TorchServe read them: `module[.py][:function]`, where module may carry a
 * directory (`sub/handler`) or dots (`pkg.handler`), and the function defaults to `handle`.
 */

export const DEFAULT_FUNCTION = 'handle';

/** TorchServe's built-in handlers: written to the manifest verbatim, never looked up in the archive. */
export const TORCHSERVE_BUILTIN_HANDLERS = [
  'base_handler',
  'text_classifier',
  'image_classifier',
  'object_detector',
  'image_segmenter',
  'dali_image_classifier',
  'vllm_handler',
  'trt_llm_handler',
] as const;

export interface EntryPoint {
  /** The string as given. */
  raw: string;
  /** Directory part before the module, '' if none (`sub` for `sub/h:fn`). */
  dir: string;
  /** Module name as imported: no directory, no `.py`/`.js` suffix (`h`, or `pkg.h`). */
  module: string;
  /** Function to call; `handle` if the string has none. */
  functionName: string;
  /** Whether the string named the function explicitly. */
  hasExplicitFunction: boolean;
}

const SOURCE_SUFFIX = /\.(py|js|mjs|cjs)$/;

export function parseEntryPoint(raw: string): EntryPoint {
  const trimmed = raw.trim();
  const colon = trimmed.lastIndexOf(':');
  // A Windows drive letter (`C:\x`) is not a function separator.
  const hasFn = colon > 1 || (colon === 1 && !/^[A-Za-z]:[\\/]/.test(trimmed));
  const modulePart = hasFn ? trimmed.slice(0, colon) : trimmed;
  const fn = hasFn ? trimmed.slice(colon + 1) : '';
  const normalized = modulePart.replace(/\\/g, '/');
  const slash = normalized.lastIndexOf('/');
  const dir = slash >= 0 ? normalized.slice(0, slash) : '';
  const module = (slash >= 0 ? normalized.slice(slash + 1) : normalized).replace(SOURCE_SUFFIX, '');
  return { raw, dir, module, functionName: fn || DEFAULT_FUNCTION, hasExplicitFunction: fn !== '' };
}

export function isTorchServeBuiltin(entry: EntryPoint): boolean {
  return entry.dir === '' && (TORCHSERVE_BUILTIN_HANDLERS as readonly string[]).includes(entry.module);
}

/**
 * Archive paths (relative, `/`-separated) that would provide the module for a runtime, in lookup order:
 * the handler's own directory first (MMS puts it on PYTHONPATH), then the archive root.
 */
export function moduleCandidates(entry: EntryPoint, runtime: string): string[] {
  const base = entry.module.replace(/\./g, '/');
  const roots = entry.dir && entry.dir !== '.' ? [entry.dir.replace(/^\.\//, '') + '/', ''] : [''];
  const out: string[] = [];
  for (const root of roots) {
    if (runtime === 'node') {
      for (const ext of ['.js', '.mjs', '.cjs']) out.push(root + entry.module + ext);
    } else {
      out.push(root + base + '.py', root + base + '/__init__.py');
    }
  }
  return out;
}
