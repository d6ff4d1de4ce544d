#!/usr/bin/env node
// Build step: compiles schemas/manifest.schema.json into standalone validation code (dist/manifest-validator.cjs)
// so the CLIs don't load and run the Ajv compiler on every start (~40 ms of a ~150 ms `inspect`).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { Ajv } = require('ajv');
const standaloneCode = require('ajv/dist/standalone').default;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schema = JSON.parse(readFileSync(join(root, 'schemas', 'manifest.schema.json'), 'utf8'));
// Same options as src/manifest/validate.ts uses for its fallback compile.
const ajv = new Ajv({ allErrors: true, strict: false, code: { source: true } });
const code = standaloneCode(ajv, ajv.compile(schema));
const out = join(root, 'dist', 'manifest-validator.cjs');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.tmp`, code);
renameSync(`${out}.tmp`, out);
