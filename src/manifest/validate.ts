import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { MarError } from '../errors.js';
import { packagePath } from '../util/package-info.js';
import type { Manifest } from './manifest.js';

const require = createRequire(import.meta.url);

/** Compiles the schema with Ajv at run time (used when the build's precompiled validator is absent). */
export function compileSchemaValidator(): ValidateFunction {
  const { Ajv } = require('ajv') as typeof import('ajv');
  const schema = JSON.parse(readFileSync(packagePath('schemas', 'manifest.schema.json'), 'utf8')) as object;
  return new Ajv({ allErrors: true, strict: false }).compile(schema);
}

/** The build precompiles the schema (scripts/build-validator.js), which saves the CLIs the Ajv compiler at start-up. */
function loadValidator(): ValidateFunction {
  try {
    return require(packagePath('dist', 'manifest-validator.cjs')) as ValidateFunction;
  } catch {
    return compileSchemaValidator();
  }
}

let validateFn: ValidateFunction | undefined;

export interface ManifestValidation {
  valid: boolean;
  /** One readable line per problem, e.g. `model.modelName: must match pattern ...`. */
  errors: string[];
}

function describe(e: ErrorObject): string {
  const path = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(root)';
  switch (e.keyword) {
    case 'required':
      return `${path === '(root)' ? '' : `${path}.`}${(e.params as { missingProperty: string }).missingProperty}: is required`;
    case 'enum':
      return `${path}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    default:
      return `${path}: ${e.message ?? e.keyword}`;
  }
}

export function validateManifest(manifest: unknown): ManifestValidation {
  validateFn ??= loadValidator();
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
