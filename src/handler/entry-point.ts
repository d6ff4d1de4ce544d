/**
 * Entry-point strings as MMS and TorchServe read them: `module[.py][:function]`, where module may carry a
 * directory (`sub/handler`) or dots (`pkg.handler`), and the function defaults to `handle`.
 */

import { SOURCE_FILE_SUFFIX } from './runtimes.js';

export const DEFAULT_FUNCTION = 'handle';

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
  const module = (slash >= 0 ? normalized.slice(slash + 1) : normalized).replace(SOURCE_FILE_SUFFIX, '');
  return { raw, dir, module, functionName: fn || DEFAULT_FUNCTION, hasExplicitFunction: fn !== '' };
}
