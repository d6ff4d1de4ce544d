/**
 * The public API of mar-tools: `import { createArchive, verifyArchive } from 'mar-tools'`.
 *
 * Archives (create, inspect, verify, extract, read), opening and running a model, the MMS-compatible server,
 * and the one error type every function rejects with. Everything else under src/ is internal and may change.
 */

// Archives: create, inspect, verify, extract, read.

export type { WrittenEntry } from './archive/archive-sink.js';
export type { ExtractLimits, ExtractOptions, ExtractResult } from './archive/extract.js';
export { DEFAULT_EXTRACT_LIMITS, extractArchive } from './archive/extract.js';
export type { InspectEntry, InspectManifestKind, InspectReport } from './archive/inspect.js';
export { inspectArchive } from './archive/inspect.js';
export type { ArchiveLimits, LimitHint } from './archive/limits.js';
export { DEFAULT_ARCHIVE_LIMITS } from './archive/limits.js';
export type { ArchiveFormat, CreateArchiveOptions, CreateResult } from './archive/pack.js';
export { ARCHIVE_FORMATS, createArchive } from './archive/pack.js';
export type { CreateProgress, ProgressCallback } from './archive/progress.js';
export type { ArchiveEntryInfo, ArchiveKind, EntryType, EntryVisitor } from './archive/read.js';
export { ArchiveReader, detectArchiveKind, withArchive } from './archive/read.js';
export type { Problem, ProblemCode, VerifyResult } from './archive/verify.js';
export { verifyArchive } from './archive/verify.js';
export type { Manifest, ManifestModel } from './manifest/manifest.js';

// Running a model: open it (archive or directory), then a ModelRuntime (queue, batching, supervised workers).

export type { OpenedModel, OpenModelOptions } from './runtime/model.js';
export { openModel } from './runtime/model.js';
export type {
  CancellablePrediction,
  ModelRuntimeOptions,
  PoolEvent,
  ScaleResult,
  WorkerInfo,
  WorkerStatus,
} from './runtime/model-runtime.js';
export { ModelRuntime } from './runtime/model-runtime.js';
export type { PredictInput, PredictOptions, PredictOutcome } from './runtime/predict.js';
export { predict } from './runtime/predict.js';
export type { InferenceRequest, PredictionResult, RequestParam } from './runtime/protocol.js';

// The MMS-compatible model server: startModelServer(options), or a ModelServer built from a loadConfig() result.

export type { ListenAddress, LoadConfigOptions, ServerConfig } from './server/config.js';
export { loadConfig } from './server/config.js';
export type { ConnectionLimits } from './server/connection-guard.js';
export type { ListenerInfo, ModelServerOptions } from './server/server.js';
export { ModelServer } from './server/server.js';
export type { StartModelServerOptions } from './server/start-server.js';
export { startModelServer } from './server/start-server.js';

// Errors: every function rejects with a MarError; its code is a key of ERROR_CODES (exit code, HTTP status).

export type { ErrorCode, ErrorSpec, MarErrorOptions } from './errors.js';
export { ERROR_CODES, isMarError, MarError } from './errors.js';
