/**
 * Checks a manifest against a CRD's structural schema the way `kubectl apply --validate=strict` does: types,
 * int32/int64 formats, enums, minimums, required fields, and no field the schema does not declare.
 */

/** The keywords of a Kubernetes structural schema this checker reads (scripts/kserve-crd-subset.js keeps them). */
export interface CrdSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  enum?: unknown[];
  required?: string[];
  minimum?: number;
  maximum?: number;
  nullable?: boolean;
  properties?: Record<string, CrdSchema>;
  additionalProperties?: CrdSchema | boolean;
  items?: CrdSchema;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Every problem with `value` at `path` under `schema`, as `path: what is wrong` lines; [] when it conforms. */
export function checkCrdSchema(schema: CrdSchema, value: unknown, path = ''): string[] {
  const problems: string[] = [];
  const here = path || '<root>';
  const actual = typeOf(value);
  if (actual === 'null') {
    if (!schema.nullable) problems.push(`${here}: null is not allowed`);
    return problems;
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (actual !== 'integer' && actual !== 'string') problems.push(`${here}: expected an integer or a string, got ${actual}`);
    return problems;
  }
  if (schema.type !== undefined && actual !== schema.type && !(schema.type === 'number' && actual === 'integer')) {
    problems.push(`${here}: expected ${schema.type}, got ${actual} ${JSON.stringify(value)}`);
    return problems;
  }
  if (schema.enum !== undefined && !schema.enum.includes(value))
    problems.push(`${here}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (typeof value === 'number') {
    const range = schema.format === undefined ? undefined : INT_RANGES[schema.format];
    if (range && (value < range[0] || value > range[1])) problems.push(`${here}: ${value} does not fit ${schema.format}`);
    if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${here}: ${value} is below the minimum ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) problems.push(`${here}: ${value} is above the maximum ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.items) for (const [i, v] of value.entries()) problems.push(...checkCrdSchema(schema.items, v, `${path}[${i}]`));
    return problems;
  }
  if (actual === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in obj)) problems.push(`${here}: the required field ${key} is missing`);
    for (const [key, v] of Object.entries(obj)) {
      const sub = schema.properties?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      if (sub) problems.push(...checkCrdSchema(sub, v, path ? `${path}.${key}` : key));
      else if (!schema['x-kubernetes-preserve-unknown-fields'] && schema.additionalProperties !== true) {
        problems.push(`${path ? `${path}.` : ''}${key}: unknown field`);
      }
    }
  }
  return problems;
}
