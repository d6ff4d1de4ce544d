/**
 * What the server says about model versions: TorchServe's texts and statuses (MMS has no versions, so the texts of
 * versioned paths are TorchServe's in both dialects), and the two answers where the dialects differ.
 */
import { MarError } from '../errors.js';
import type { ServerConfig } from './config.js';

/** The version of a model whose manifest names none (TorchServe's ModelManager default). */
export const DEFAULT_MODEL_VERSION = '1.0';

export type Dialect = 'mms' | 'torchserve';

/** The version answers MMS and TorchServe give differently (to be folded into the server's one dialect table). */
export interface VersionDialect {
  /** Registering a name in a version that is already registered: 409 in both, with different texts. */
  conflict(name: string, version: string): MarError;
  /** `GET /models/{name}`: MMS answers its default version as one object, TorchServe as a one-element array. */
  readonly describeAsArray: boolean;
}

export const VERSION_DIALECTS: Readonly<Record<Dialect, VersionDialect>> = {
  mms: {
    conflict: (name) => new MarError('MODEL_CONFLICT', `Model ${name} is already registered.`),
    describeAsArray: false,
  },
  torchserve: {
    conflict: (name, version) => new MarError('MODEL_CONFLICT', `Model version ${version} is already registered for model ${name}`),
    describeAsArray: true,
  },
};

/**
 * The dialect a server speaks. Until the TorchServe configuration (`--ts-config`) gives ServerConfig its dialect
 * field, an optional `dialect` on the config object selects it; MMS otherwise.
 */
export function versionDialect(config: ServerConfig): VersionDialect {
  return VERSION_DIALECTS[(config as { readonly dialect?: Dialect }).dialect === 'torchserve' ? 'torchserve' : 'mms'];
}

/** A path names a version the model does not have (describe, scale, predict, unregister). */
export const versionNotFound = (name: string, version: string): MarError =>
  new MarError('VERSION_NOT_FOUND', `Model version: ${version} does not exist for model: ${name}`);

/** set-default names a version the model does not have (TorchServe's ModelVersionedRefs text, without colons). */
export const setDefaultVersionNotFound = (name: string, version: string): MarError =>
  new MarError('VERSION_NOT_FOUND', `Model version ${version} does not exist for model ${name}`);

/** Unregistering the default version while others remain. */
export const defaultVersionInUse = (name: string): MarError =>
  new MarError('DEFAULT_VERSION_IN_USE', `Cannot remove default version for model ${name}`);

/** The status text of a successful set-default. */
export const defaultVersionSet = (name: string, version: string): string =>
  `Default version successfully updated for model "${name}" to "${version}"`;
