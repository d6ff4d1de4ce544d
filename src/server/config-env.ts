/**
 * Where config.properties values come from besides the file, per dialect (dialects/dialect.ts): `$$NAME$$`
 * references inside values, and the MMS_<KEY> / TS_<KEY> environment variables that override keys.
 */

import { MarError } from '../errors.js';
import type { Dialect } from './dialects/index.js';

/**
 * Replaces `$$NAME$$` in every value by the environment variable NAME. An unset NAME is '' for MMS and an
 * error for TorchServe ("Invalid Environment Variable NAME" there).
 */
export function substituteEnvReferences(props: Map<string, string>, env: NodeJS.ProcessEnv, dialect: Dialect): void {
  for (const [key, value] of props) {
    if (!value.includes('$$')) continue;
    props.set(
      key,
      value.replace(new RegExp(dialect.envReference.source, 'g'), (_, name: string) => {
        const v = env[name];
        if (v !== undefined) return v;
        if (dialect.unsetEnvReference === 'empty') return '';
        throw new MarError(
          'INPUT_INVALID',
          `invalid config value ${key}: it refers to $$${name}$$ but the environment variable ${name} is not set; set it or edit the config file`,
        );
      }),
    );
  }
}

/** The variable that overrides `key`: TS_INFERENCE_ADDRESS; a key that already starts with the prefix keeps it (TS_OPEN_INFERENCE_PROTOCOL). */
export function envVariableFor(key: string, dialect: Dialect): string {
  const upper = key.toUpperCase();
  return upper.startsWith(dialect.envPrefix) ? upper : dialect.envPrefix + upper;
}

/**
 * Applies the dialect's environment variables to `props`: MMS_<KEY> always (ours), TS_<KEY> only when the
 * properties so far say enable_envvars_config=true (TorchServe's rule), a guarded key only with its guard true.
 */
export function applyEnvOverrides(props: Map<string, string>, env: NodeJS.ProcessEnv, dialect: Dialect, coreKeys: readonly string[]): void {
  if (dialect.envNeedsOptIn && props.get('enable_envvars_config')?.trim().toLowerCase() !== 'true') return;
  for (const key of dialect.envKeys ?? coreKeys) {
    const guard = dialect.envGuardedKeys[key];
    if (guard !== undefined && props.get(guard)?.trim().toLowerCase() !== 'true') continue;
    const v = env[envVariableFor(key, dialect)];
    if (v !== undefined) props.set(key, v);
  }
}
