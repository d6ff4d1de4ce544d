/**
 * The one table of runtimes: which names a manifest, `model-archiver --runtime` and a register call accept,
 * which of them we run (and with which launcher), and the language their handler is written in. Everything
 * that lists runtimes (manifest schema test, archiver, server, OpenAPI, launchers, handler lookup) derives from it.
 */

import { MarError } from '../errors.js';

/** The language of a handler module, which decides the source files that provide it. */
export type HandlerLanguage = 'python' | 'node';

interface RuntimeRow {
  readonly name: string;
  /** In the manifest schema's `runtime` enum (inspect/verify accept it). */
  readonly manifest: boolean;
  /** Accepted by `model-archiver --runtime`. */
  readonly create: boolean;
  /** Accepted by a register call's `runtime` parameter (MMS's RuntimeType, plus node). */
  readonly register: boolean;
  /** The handler's language; null when the handler is not source we can look at (LSP: a native library). */
  readonly language: HandlerLanguage | null;
  /** The launcher that runs it (runtime/launchers.ts); absent when model-server refuses the runtime. */
  readonly launcher?: HandlerLanguage;
  /** Why model-server refuses it (one line, the RUNTIME_UNSUPPORTED message); only for runtimes without a launcher. */
  readonly refusal?: string;
}

/** In manifest order: the schema's enum, `--runtime` choices and messages list them in this order. */
export const RUNTIME_TABLE = [
  { name: 'python', manifest: true, create: true, register: true, language: 'python', launcher: 'python' },
  {
    name: 'python2',
    manifest: true,
    create: true,
    register: true,
    language: 'python',
    refusal: 'runtime python2 is not supported: Python 2 reached end of life in 2020; port the handler and use python3 (--runtime python3)',
  },
  { name: 'python3', manifest: true, create: true, register: true, language: 'python', launcher: 'python' },
  { name: 'node', manifest: true, create: true, register: true, language: 'node', launcher: 'node' },
  {
    name: 'LSP',
    manifest: true,
    create: false,
    register: false,
    language: null,
    refusal: 'runtime LSP (TorchServe large model service) is not supported: use python3 or node',
  },
] as const satisfies readonly RuntimeRow[];

type Row = (typeof RUNTIME_TABLE)[number];

/** A runtime model-server runs: python, python3 or node. */
export type WorkerRuntime = Extract<Row, { launcher: string }>['name'];

/** Runtimes a manifest may name (the `runtime` enum of schemas/manifest.schema.json). */
export const MANIFEST_RUNTIMES: readonly string[] = RUNTIME_TABLE.filter((r) => r.manifest).map((r) => r.name);
/** Runtimes `model-archiver --runtime` accepts. */
export const CREATE_RUNTIMES: readonly string[] = RUNTIME_TABLE.filter((r) => r.create).map((r) => r.name);
/** Runtimes a register call may ask for. */
export const REGISTER_RUNTIMES: readonly string[] = RUNTIME_TABLE.filter((r) => r.register).map((r) => r.name);
/** Runtimes model-server runs. */
export const WORKER_RUNTIMES: readonly WorkerRuntime[] = RUNTIME_TABLE.flatMap((r) => ('launcher' in r ? [r.name] : []));

/** Source file extensions per handler language, in lookup order. */
export const SOURCE_EXTENSIONS: Readonly<Record<HandlerLanguage, readonly string[]>> = {
  python: ['.py'],
  node: ['.js', '.mjs', '.cjs'],
};

/** Matches a path ending in any handler source extension (`.py`, `.js`, `.mjs`, `.cjs`). */
export const SOURCE_FILE_SUFFIX = new RegExp(
  `(${Object.values(SOURCE_EXTENSIONS)
    .flat()
    .map((x) => `\\${x}`)
    .join('|')})$`,
);

function rowOf(name: string): RuntimeRow | undefined {
  return (RUNTIME_TABLE as readonly RuntimeRow[]).find((r) => r.name === name);
}

/**
 * The handler language of a runtime as written in a manifest; null when its handler is not source (LSP).
 * A name not in the table is read as Python, as MMS does with any runtime it does not special-case.
 */
export function handlerLanguage(runtime: string): HandlerLanguage | null {
  const row = rowOf(runtime);
  return row ? row.language : 'python';
}

/** Whether model-server refuses a runtime we would otherwise recognise: the one-line reason, or null. */
export function runtimeRefusal(runtime: string): string | null {
  return rowOf(runtime)?.refusal ?? null;
}

/** `a, b or c` */
function orList(items: readonly string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/** Maps a manifest/CLI runtime to one we run (absent or empty: python), refusing the ones we cannot. */
export function resolveRuntime(runtime: string | undefined): WorkerRuntime {
  const r = (runtime ?? 'python').trim() || 'python';
  const row = rowOf(r);
  if (row?.launcher) return row.name as WorkerRuntime;
  if (row?.refusal) throw new MarError('RUNTIME_UNSUPPORTED', row.refusal);
  throw new MarError('RUNTIME_UNSUPPORTED', `runtime ${JSON.stringify(r)} is not supported: use ${orList(WORKER_RUNTIMES)}`);
}

/** The launcher (Python or Node worker) that runs a runtime we run. */
export function launcherOf(runtime: WorkerRuntime): HandlerLanguage {
  return rowOf(runtime)!.launcher!;
}
