/**
 * What verifyArchive reports: the problem codes, one problem, the result, and the collector the checks write to.
 */

import type { InspectManifestKind } from './inspect.js';
import type { ArchiveKind } from './read.js';

export type ProblemCode =
  | 'ARCHIVE_CORRUPT'
  | 'ARCHIVE_LIMIT'
  | 'STORED_WITH_DATA_DESCRIPTOR'
  | 'NAME_NOT_UTF8'
  | 'NAME_BACKSLASH'
  | 'NAME_DUPLICATE'
  | 'UNSAFE_PATH'
  | 'LINK_ENTRY'
  | 'SPECIAL_ENTRY'
  | 'UNSUPPORTED_METHOD'
  | 'ENCRYPTED_ENTRY'
  | 'LOCAL_HEADER_MISMATCH'
  | 'CRC_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'DATA_UNREADABLE'
  | 'DIGEST_FILE_INVALID'
  | 'DIGEST_MISMATCH'
  | 'DIGEST_MISSING_ENTRY'
  | 'DIGEST_UNLISTED'
  | 'MANIFEST_MISSING'
  | 'MANIFEST_LEGACY'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_SCHEMA'
  | 'TGZ_NO_ROOT'
  | 'HANDLER_MISSING'
  | 'HANDLER_ENTRY_POINT'
  | 'FILE_MISSING'
  | 'CONFIG_INVALID'
  // warnings only
  | 'NAME_NO_UTF8_FLAG'
  | 'NAME_CASE_COLLISION'
  | 'HANDLER_BUILTIN'
  | 'HANDLER_NOT_CHECKED'
  | 'PYTHON_PACKAGE_MISSING';

export interface Problem {
  code: ProblemCode;
  /** The entry concerned, as stored in the archive. */
  path?: string;
  /** One line: what is wrong and how to fix it. */
  message: string;
}

/** Which handler a server will run for the archive (set when the manifest names one). */
export interface HandlerReport {
  /** model.handler as the manifest has it. */
  handler: string;
  /** What runs, in words: the module found in the archive, or the built-in and its class. */
  runs: string;
  /** Python packages it needs (a built-in's, or the known ones its source imports: torch, torchvision, PIL, ...). */
  needs: string[];
}

export interface VerifyResult {
  ok: boolean;
  path: string;
  format: ArchiveKind;
  entryCount: number;
  manifestKind: InspectManifestKind;
  problems: Problem[];
  /** Things worth knowing that do not stop a server from loading the archive. */
  warnings: Problem[];
  /** Which handler will run; absent when the manifest names none (or cannot be read). */
  handler?: HandlerReport;
}

export const REBUILD = 'rebuild the archive with model-archiver';

export class Collector {
  readonly problems: Problem[] = [];
  readonly warnings: Problem[] = [];
  handler: HandlerReport | undefined;

  problem(code: ProblemCode, message: string, path?: string): void {
    this.problems.push(path === undefined ? { code, message } : { code, path, message });
  }

  warn(code: ProblemCode, message: string, path?: string): void {
    this.warnings.push(path === undefined ? { code, message } : { code, path, message });
  }
}

export function q(s: string): string {
  return JSON.stringify(s);
}
