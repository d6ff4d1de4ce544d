/**
 * Loading a Node handler for the worker (worker.ts): where its module is (handler/locate.ts), which export is the
 * entry point (a function, or a class instantiated once with its initialize()), and the context it gets.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseEntryPoint } from '../../handler/entry-point.js';
import { locateHandler } from '../../handler/locate.js';
import { discoverManifest } from '../../manifest/discover.js';
import type { LoadRequest } from '../protocol.js';
import { Context } from './context.js';

export type HandleFn = (data: unknown, context: Context) => unknown;

const isClass = (v: unknown): v is new () => Record<string, unknown> =>
  typeof v === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(v));

export interface LoadedHandler {
  handle: HandleFn;
  context: Context;
}

/** context.manifest: MAR-INF/MANIFEST.json, as the Python worker (MMS) shows it; null without one (a legacy root one too). */
async function readManifest(modelDir: string): Promise<Record<string, unknown> | null> {
  const found = await discoverManifest((path) => readFile(join(modelDir, path)).catch(() => null));
  return found.kind === 'mar-inf' && found.error === undefined ? (found.json as Record<string, unknown>) : null;
}

function readYamlConfig(modelDir: string, manifest: Record<string, unknown> | null): Record<string, unknown> {
  const file = (manifest?.['model'] as Record<string, unknown> | undefined)?.['configFile'];
  if (typeof file !== 'string' || !file) return {};
  try {
    // yaml loads only for a model that has a config file: ~25 ms off every Node worker's start
    const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
    const v = parse(readFileSync(join(modelDir, file), 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** What require() throws for a module it will not load that import() can: an ES module awaiting at top level, say. */
const REQUIRE_REFUSED = new Set(['ERR_REQUIRE_ASYNC_MODULE', 'ERR_REQUIRE_ESM', 'ERR_REQUIRE_CYCLE_MODULE']);

/**
 * The handler's module as import() gives it, loaded with require() when it can be: the worker (a CommonJS bundle) then
 * never starts Node's ES module loader, ~5 ms of a cold start, and require() is faster (Node >= 20.19 requires ES
 * modules too). A CommonJS module comes as import() would give it: `default` is its module.exports, beside its keys.
 */
async function importHandler(file: string): Promise<Record<string, unknown>> {
  let loaded: unknown;
  try {
    loaded = createRequire(file)(file);
  } catch (err) {
    if (REQUIRE_REFUSED.has((err as NodeJS.ErrnoException).code ?? ''))
      return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    throw err;
  }
  if (Object.prototype.toString.call(loaded) === '[object Module]') return loaded as Record<string, unknown>;
  const ns: Record<string, unknown> = {};
  if (loaded !== null && (typeof loaded === 'object' || typeof loaded === 'function')) Object.assign(ns, loaded);
  ns['default'] = loaded;
  return ns;
}

export async function loadHandler(load: LoadRequest): Promise<LoadedHandler> {
  const entry = parseEntryPoint(load.handler);
  const location = await locateHandler(entry, 'node', (path) => existsSync(resolve(load.modelPath, path)));
  if (location.kind !== 'found') {
    const looked = location.kind === 'missing' ? location.looked.map((c) => resolve(load.modelPath, c)) : [];
    throw new Error(`handler module ${entry.module} not found (looked for ${looked.join(', ')})`);
  }
  const file = resolve(load.modelPath, location.path);
  const mod = await importHandler(file);

  const manifest = await readManifest(load.modelPath);
  const context = new Context({
    modelName: load.modelName,
    manifest,
    systemProperties: {
      modelDir: load.modelPath,
      gpuId: load.gpuId >= 0 ? load.gpuId : null,
      batchSize: load.batchSize,
      serverName: 'MMS',
      serverVersion: process.env['MAR_SERVER_VERSION'] ?? '1.0',
    },
    modelYamlConfig: readYamlConfig(load.modelPath, manifest),
  });

  // Metrics recorded while loading belong to a fresh id, as MMS's load-time store (a uuid4).
  context.startBatch(null, randomUUID());

  // Named exports first, then a CommonJS module.exports / default export object.
  const def = mod['default'];
  const scopes = [
    mod,
    ...(def && (typeof def === 'object' || (typeof def === 'function' && !isClass(def))) ? [def as Record<string, unknown>] : []),
  ];
  const name = entry.functionName;
  for (const scope of scopes) {
    const fn = scope[name];
    if (typeof fn === 'function' && !isClass(fn)) {
      const init = scope['initialize'];
      // MMS initialises a function entry point by calling it with data = None; an exported initialize() is the JS way.
      if (typeof init === 'function' && init !== fn) await (init as (c: Context) => unknown).call(scope, context);
      else await (fn as HandleFn).call(scope, null, context);
      return { handle: (data, c) => (fn as HandleFn).call(scope, data, c), context };
    }
  }

  // `export default function (data, context)` / `module.exports = function ...`: the module is the handler.
  if (typeof def === 'function' && !isClass(def) && !entry.hasExplicitFunction) {
    const fn = def as HandleFn;
    await fn(null, context);
    return { handle: (data, c) => fn(data, c), context };
  }

  const classes = new Set<new () => Record<string, unknown>>();
  for (const scope of [mod, ...(def && typeof def === 'object' ? [def as Record<string, unknown>] : [])]) {
    for (const v of Object.values(scope)) if (isClass(v)) classes.add(v);
  }
  if (isClass(def)) classes.add(def);
  if (classes.size !== 1) {
    throw new Error(
      classes.size === 0
        ? `module ${entry.module} exports no function ${name} and no class`
        : `Expected only one class in module ${entry.module} (found ${classes.size}) or an exported function ${name}`,
    );
  }
  const Cls = [...classes][0]!;
  const instance = new Cls();
  const method = typeof instance[name] === 'function' ? name : 'handle';
  if (typeof instance[method] !== 'function') throw new Error(`class ${Cls.name} has no ${name}() method`);
  if (typeof instance['initialize'] === 'function') await (instance['initialize'] as (c: Context) => unknown).call(instance, context);
  return { handle: (data, c) => (instance[method] as HandleFn).call(instance, data, c), context };
}
