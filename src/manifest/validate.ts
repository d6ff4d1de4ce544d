import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { MarError } from '../errors.js';
import { packagePath } from '../util/package-info.js';
import type { Manifest } from './manifest.js';

// Compiled once at import: every create/inspect/verify/load shares it.
const schema = JSON.parse(readFileSync(packagePath('schemas', 'manifest.schema.json'), 'utf8')) as object;
const ajv = new Ajv({ allErrors: true, strict: false });
const validateFn = ajv.compile(schema);

export interface ManifestValidation {
  valid: boolean;
  /** One readable line per problem, e.g. `model.modelName: must match pattern ...`. */
  errors: string[];
}

function describe(e: ErrorObject): string {
  const path = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(root)';
  switch (e.keyword) {
    case 'required':
      return `${path === '(root)' ? '' : path + '.'}${(e.params as { missingProperty: string }).missingProperty}: is required`;
    case 'enum':
      return `${path}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    default:
      return `${path}: ${e.message ?? e.keyword}`;
  }
}

export function validateManifest(manifest: unknown): ManifestValidation {
  const valid = validateFn(manifest) as boolean;
  return { valid, errors: valid ? [] : (validateFn.errors ?? []).map(describe) };
}

/** Throws MANIFEST_INVALID listing every schema problem; used before anything is written. */
export function assertValidManifest(manifest: unknown, source = 'MANIFEST.json'): asserts manifest is Manifest {
  const { valid, errors } = validateManifest(manifest);
  if (!valid) {
    throw new MarError('MANIFEST_INVALID', `${source} does not match schemas/manifest.schema.json: ${errors.join('; ')}`, {
      details: errors,
    });
  }
}
