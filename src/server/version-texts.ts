/**
 * What the server says about model versions: TorchServe's texts and statuses, in both dialects (MMS has no versions).
 * The two answers that differ between the dialects (a duplicate version, the shape of describe) are rows of the
 * dialect table (dialects/).
 */
import { MarError } from '../errors.js';

/** The version of a model whose manifest names none (TorchServe's ModelManager default). */
export const DEFAULT_MODEL_VERSION = '1.0';

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
