#!/usr/bin/env node
// Writes fixtures/kserve/crd-subset.json: the parts of KServe's CRD schemas (config/crd/full in kserve/kserve) that
// the manifests in deploy/kserve/ use, with their types, formats, enums and required fields, so `npm test` checks
// those manifests against KServe's own schema without carrying its 2 MB of CRDs; and core v1 Container as those CRDs
// inline it, cut to what deploy/kubernetes/deployment.yaml's containers use.
//
//   node scripts/kserve-crd-subset.js <kserve checkout>/config/crd/full <kserve commit>
//
// Run it again after adding a field to a manifest: a field the CRD does not have stops it with its path.
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [crdDir, commit] = process.argv.slice(2);
if (!crdDir || !commit) {
  process.stderr.write('usage: node scripts/kserve-crd-subset.js <kserve>/config/crd/full <kserve commit>\n');
  process.exit(2);
}

/** Schema keywords that say what a value may be (descriptions and printer columns are dropped). */
const KEEP = [
  'type',
  'format',
  'enum',
  'required',
  'minimum',
  'maximum',
  'pattern',
  'nullable',
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
];

function pick(schema) {
  const out = {};
  for (const k of KEEP) if (schema[k] !== undefined) out[k] = schema[k];
  return out;
}

/** Two pruned schemas of one place (two array items, two map values) as one. */
function merge(a, b) {
  if (!a) return b;
  const out = { ...a };
  if (b.properties) {
    out.properties = { ...a.properties };
    for (const [k, v] of Object.entries(b.properties)) out.properties[k] = merge(out.properties[k], v);
  }
  if (b.items) out.items = merge(a.items, b.items);
  if (b.additionalProperties) out.additionalProperties = merge(a.additionalProperties, b.additionalProperties);
  return out;
}

/** The schema cut down to the fields `value` uses; a field the schema does not know fails with its path. */
function prune(schema, value, path) {
  const out = pick(schema);
  if (Array.isArray(value) && schema.items) {
    for (const [i, v] of value.entries()) out.items = merge(out.items, prune(schema.items, v, `${path}[${i}]`));
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, v] of Object.entries(value)) {
      // the API server checks metadata as ObjectMeta (the CRD only says object); the test checks it the same way
      if (path.endsWith(':root') && key === 'metadata') {
        out.properties ??= {};
        out.properties[key] = pick(schema.properties[key]);
      } else if (schema.properties?.[key]) {
        out.properties ??= {};
        out.properties[key] = merge(out.properties[key], prune(schema.properties[key], v, `${path}.${key}`));
      } else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
        out.additionalProperties = merge(out.additionalProperties, prune(schema.additionalProperties, v, `${path}.${key}`));
      } else if (schema['x-kubernetes-preserve-unknown-fields'] || schema.additionalProperties === true) {
        // free-form: nothing below is checked
      } else {
        throw new Error(`${path}.${key} is not in KServe's CRD`);
      }
    }
  }
  return out;
}

/** kind@apiVersion -> openAPIV3Schema, from every CRD file in the directory. */
const schemas = new Map();
const files = [];
for (const f of readdirSync(crdDir).filter((f) => /^serving\.kserve\.io_.*\.yaml$/.test(f))) {
  const crd = parseAllDocuments(readFileSync(join(crdDir, f), 'utf8'))[0].toJS();
  if (crd?.kind !== 'CustomResourceDefinition') continue;
  for (const v of crd.spec.versions) {
    schemas.set(`${crd.spec.names.kind}@${crd.spec.group}/${v.name}`, { file: f, schema: v.schema.openAPIV3Schema });
  }
}

const kinds = {};
const manifests = join(root, 'deploy', 'kserve');
for (const f of readdirSync(manifests)
  .filter((f) => f.endsWith('.yaml'))
  .sort()) {
  for (const doc of parseAllDocuments(readFileSync(join(manifests, f), 'utf8'))) {
    const m = doc.toJS();
    const key = `${m.kind}@${m.apiVersion}`;
    const crd = schemas.get(key);
    if (!crd) throw new Error(`${f}: no CRD for ${key} in ${crdDir}`);
    if (!files.includes(crd.file)) files.push(crd.file);
    kinds[key] = merge(kinds[key], prune(crd.schema, m, `${f}:root`));
  }
}

// The Deployment's containers against core v1 Container as the ServingRuntime CRD inlines it: a misspelt probe or
// mount field fails here (kubernetes-models' validation does not look for unknown fields)
const csr = schemas.get('ClusterServingRuntime@serving.kserve.io/v1alpha1');
const containerSchema = csr.schema.properties.spec.properties.containers.items;
for (const doc of parseAllDocuments(readFileSync(join(root, 'deploy', 'kubernetes', 'deployment.yaml'), 'utf8'))) {
  const m = doc.toJS();
  for (const [i, c] of [...m.spec.template.spec.containers, ...(m.spec.template.spec.initContainers ?? [])].entries()) {
    kinds['Container@v1'] = merge(kinds['Container@v1'], prune(containerSchema, c, `deployment.yaml:containers[${i}]`));
  }
}

const out = join(root, 'fixtures', 'kserve', 'crd-subset.json');
const text = `${JSON.stringify({ source: { repository: 'kserve/kserve', commit, path: 'config/crd/full', files: files.sort() }, kinds }, null, 2)}\n`;
writeFileSync(`${out}.tmp`, text);
renameSync(`${out}.tmp`, out);
process.stdout.write(`wrote ${out}: ${Object.keys(kinds).join(', ')}\n`);
