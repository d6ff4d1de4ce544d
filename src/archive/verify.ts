/**
 * verifyArchive: every check we know of that decides whether MMS / TorchServe will load an archive the way
 * its author meant: zip structure as Java's ZipInputStream reads it, names, manifest, handler, referenced
 * files, config YAML, CRCs and recorded sha256 digests. Problems are collected, not thrown. The structure and
 * content checks live here, the data pass (CRCs, FILES.sha256) in verify-data.ts, the report types in verify-report.ts.
 */

import { MarError } from '../errors.js';
import { describeBuiltin, pythonImportsOf } from '../handler/builtins.js';
import { parseEntryPoint } from '../handler/entry-point.js';
import { checkPythonEntryPoint, hasNodeExport } from '../handler/entry-point-check.js';
import { locateHandler } from '../handler/locate.js';
import { handlerLanguage } from '../handler/runtimes.js';
import { MANIFEST_PATH, type Manifest } from '../manifest/manifest.js';
import { parseModelConfig } from '../manifest/model-config.js';
import { findNestedManifest, loadManifest } from './inspect.js';
import { ArchiveReader, decodeZipName, detectArchiveKind, torchServeTarPath } from './read.js';
import { checkEntryPath, describeUnsafe } from './safe-path.js';
import { checkData } from './verify-data.js';
import { Collector, q, REBUILD, type VerifyResult } from './verify-report.js';

export { parseDigestFile } from './verify-data.js';
export type { Problem, ProblemCode, VerifyResult } from './verify-report.js';

const SOURCE_MAX_BYTES = 16 << 20;

async function checkStructure(reader: ArchiveReader, out: Collector): Promise<void> {
  const counts = new Map<string, number>();
  for (const e of reader.entries()) {
    if (reader.kind === 'tgz' && e.path === '' && e.isDirectory) continue;
    const name = e.rawPath;
    if (!e.nameValidUtf8) {
      out.problem(
        'NAME_NOT_UTF8',
        `name bytes 0x${e.rawName?.toString('hex') ?? ''} are not valid UTF-8: MMS and TorchServe fail to load the whole archive ("malformed input"); ${REBUILD}`,
        name,
      );
    } else if (e.rawName && !e.utf8Flag && /[^\x00-\x7f]/.test(name)) {
      out.warn(
        'NAME_NO_UTF8_FLAG',
        'non-ASCII name without the UTF-8 flag: Java reads it fine, but Python zipfile and unzip show it garbled',
        name,
      );
    }
    const pathCheck = checkEntryPath(name);
    if (pathCheck.unsafe) {
      out.problem(
        'UNSAFE_PATH',
        `${describeUnsafe(pathCheck.unsafe)}: extracting it would write outside the model directory (MMS does); ${REBUILD}`,
        name,
      );
    }
    if (pathCheck.hasBackslash) {
      out.problem(
        'NAME_BACKSLASH',
        `contains a backslash: the servers create a file with "\\" in its name instead of a directory (a manifest stored so is ignored); use "/" separators`,
        name,
      );
    }
    if (e.type === 'symlink' || e.type === 'hardlink') {
      const to = e.linkTarget ? ` to ${q(e.linkTarget)}` : '';
      out.problem(
        'LINK_ENTRY',
        `is a ${e.type === 'symlink' ? 'symbolic' : 'hard'} link${to}: the servers write it as a plain file (or an empty one) and safe extractors refuse it; store the file itself`,
        name,
      );
    } else if (e.type === 'other') {
      out.problem('SPECIAL_ENTRY', 'is a device, FIFO or other special file; model archives may only hold files and directories', name);
    }
    if (reader.kind === 'zip') {
      if (e.encrypted) out.problem('ENCRYPTED_ENTRY', 'is encrypted: the servers cannot read it; store it unencrypted', name);
      if (e.method === 'other') {
        out.problem(
          'UNSUPPORTED_METHOD',
          `uses compression method ${e.compressionMethod}: Java's ZipInputStream reads only stored (0) and deflated (8); ${REBUILD}`,
          name,
        );
      }
      let local;
      try {
        local = await reader.readLocalHeader(e);
      } catch (err) {
        out.problem('ARCHIVE_CORRUPT', `its local file header cannot be read (${(err as Error).message})`, name);
        continue;
      }
      const dd = ((local.flags | (e.flags ?? 0)) & 0x8) !== 0;
      if (dd && (local.compressionMethod === 0 || e.compressionMethod === 0)) {
        out.problem(
          'STORED_WITH_DATA_DESCRIPTOR',
          `stored entry with a data descriptor (flag bit 3): Java's ZipInputStream in MMS and TorchServe rejects the archive ("only DEFLATED entries can have EXT descriptor"); ${REBUILD}`,
          name,
        );
      }
      if (e.rawName && !local.rawName.equals(e.rawName)) {
        out.problem(
          'LOCAL_HEADER_MISMATCH',
          `the local header names it ${q(decodeZipName(local.rawName).name)}: Java's ZipInputStream uses the local name, other tools the central directory; ${REBUILD}`,
          name,
        );
      } else if (local.compressionMethod !== e.compressionMethod) {
        out.problem(
          'LOCAL_HEADER_MISMATCH',
          `local header says method ${local.compressionMethod}, central directory ${e.compressionMethod}; ${REBUILD}`,
          name,
        );
      }
    }
    if (!e.isDirectory) counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
  }
  const byFolded = new Map<string, string>();
  for (const path of counts.keys()) {
    const folded = path.toLowerCase();
    const other = byFolded.get(folded);
    if (other === undefined) byFolded.set(folded, path);
    else
      out.warn(
        'NAME_CASE_COLLISION',
        `differs from ${q(other)} only in case: extracted on macOS or Windows, one overwrites the other`,
        path,
      );
  }
  // a file that other entries need as a directory: the servers' unzip cannot create them (extract refuses it)
  for (const path of counts.keys()) {
    const parts = path.split('/');
    const parent = parts
      .slice(1)
      .map((_, i) => parts.slice(0, i + 1).join('/'))
      .find((p) => counts.has(p));
    if (parent !== undefined)
      out.problem('NAME_DUPLICATE', `needs ${q(parent)} to be a directory, but it is also a file; ${REBUILD}`, path);
  }
  // sizes a zip records are only claims, but claims over the limit are refused by extract and the loaders before reading
  const declared = reader.entries().reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0);
  if (reader.kind === 'zip' && declared > reader.limits.maxTotalBytes) {
    out.problem('ARCHIVE_LIMIT', `the entries declare ${declared} bytes of content, more than the ${reader.limits.maxTotalBytes} allowed`);
  }
  for (const [path, n] of counts) {
    if (n > 1) {
      out.problem(
        'NAME_DUPLICATE',
        `appears ${n} times: the servers keep the last copy, other tools the first, so the content is ambiguous; ${REBUILD}`,
        path,
      );
    }
  }
}

async function checkContent(reader: ArchiveReader, manifest: Manifest, out: Collector): Promise<void> {
  const model = (manifest.model ?? {}) as Record<string, unknown>;
  const runtime = typeof manifest.runtime === 'string' ? manifest.runtime : 'python';
  const handler = typeof model['handler'] === 'string' ? (model['handler'] as string) : '';
  if (handler) {
    const entry = parseEntryPoint(handler);
    const location = await locateHandler(entry, runtime, (path) => reader.has(path));
    if (location.kind === 'not-source') {
      out.warn('HANDLER_NOT_CHECKED', `runtime ${runtime}: handler ${q(handler)} is a native library and is not checked`);
    } else if (location.kind === 'builtin') {
      out.handler = { handler, runs: describeBuiltin(location.builtin), needs: [...location.builtin.needs] };
      if (location.builtin.className === null) out.warn('HANDLER_BUILTIN', `handler ${q(handler)} is ${describeBuiltin(location.builtin)}`);
    } else if (location.kind === 'missing') {
      out.problem(
        'HANDLER_MISSING',
        `handler module ${q(entry.module)} is not in the archive (looked for ${location.looked.join(', ')}); add it or fix model.handler`,
      );
    } else {
      const found = location.path;
      out.handler = { handler, runs: `${found} in the archive`, needs: [] };
      try {
        const source = (await reader.readEntry(found, SOURCE_MAX_BYTES)).toString('utf8');
        if (handlerLanguage(runtime) === 'python') out.handler.needs = pythonImportsOf(source);
        if (handlerLanguage(runtime) === 'node') {
          if (!hasNodeExport(source, entry.functionName)) {
            out.problem(
              'HANDLER_ENTRY_POINT',
              `${found} does not export ${entry.functionName}; export it (export function ${entry.functionName}(...)) or fix model.handler`,
              found,
            );
          }
        } else {
          const why = checkPythonEntryPoint(source, entry.functionName);
          if (why) out.problem('HANDLER_ENTRY_POINT', `handler ${q(handler)} cannot be resolved: ${why}`, found);
        }
      } catch (err) {
        out.problem('DATA_UNREADABLE', `handler source cannot be read: ${(err as Error).message}`, found);
      }
    }
  }
  for (const field of ['serializedFile', 'modelFile', 'requirementsFile', 'configFile'] as const) {
    const name = model[field];
    if (typeof name !== 'string' || name === '') continue;
    if (!reader.has(name)) {
      out.problem(
        'FILE_MISSING',
        `manifest model.${field} names ${q(name)}, which is not in the archive; add the file or fix the manifest`,
      );
    }
  }
  const configFile = model['configFile'];
  if (typeof configFile === 'string' && reader.has(configFile)) {
    try {
      parseModelConfig((await reader.readEntry(configFile, reader.limits.maxManifestBytes)).toString('utf8'), configFile);
    } catch (err) {
      out.problem('CONFIG_INVALID', err instanceof Error ? err.message : String(err), configFile);
    }
  }
}

/** Verifies a .mar, .tar.gz or model directory. Throws only when the path cannot be read at all. */
export async function verifyArchive(path: string): Promise<VerifyResult> {
  const out = new Collector();
  const format = await detectArchiveKind(path);
  let reader: ArchiveReader;
  try {
    reader = await ArchiveReader.open(path);
  } catch (err) {
    // An archive we cannot even list is one problem, reported like the others (and in --json).
    if (err instanceof MarError && err.code === 'ARCHIVE_CORRUPT') {
      out.problem('ARCHIVE_CORRUPT', err.message);
      return { ok: false, path, format, entryCount: 0, manifestKind: 'none', problems: out.problems, warnings: out.warnings };
    }
    throw err;
  }
  try {
    await checkStructure(reader, out);
    const loaded = await loadManifest(reader);
    if (loaded.kind === 'none') {
      const backslashed = reader.entries().find((e) => e.path.replace(/\\/g, '/') === MANIFEST_PATH);
      const nested = findNestedManifest(reader);
      const hint = backslashed
        ? ` (there is ${q(backslashed.path)}, which the servers do not treat as that path)`
        : nested
          ? ` (there is ${q(nested)}: the archive was made from the directory above the model; pack the model directory itself)`
          : '';
      out.problem(
        'MANIFEST_MISSING',
        `${MANIFEST_PATH} is missing${hint}: TorchServe silently loads defaults and MMS has no handler; ${REBUILD}`,
      );
    } else if (loaded.kind === 'legacy') {
      out.problem(
        'MANIFEST_LEGACY',
        `only a legacy 0.x MANIFEST.json at the root: MMS migrates it, but TorchServe ignores it and uses defaults; ${REBUILD}`,
        'MANIFEST.json',
      );
    }
    if (loaded.error) out.problem('MANIFEST_INVALID', loaded.error, loaded.kind === 'legacy' ? 'MANIFEST.json' : MANIFEST_PATH);
    for (const e of loaded.schemaErrors) out.problem('MANIFEST_SCHEMA', e, loaded.kind === 'legacy' ? 'MANIFEST.json' : MANIFEST_PATH);
    if (reader.kind === 'tgz' && loaded.kind === 'mar-inf') {
      const tsSeesManifest = reader.entries().some((e) => e.type === 'file' && torchServeTarPath(e.rawPath) === MANIFEST_PATH);
      if (!tsSeesManifest) {
        out.problem(
          'TGZ_NO_ROOT',
          `the tar has no single root directory: TorchServe strips the first path component and loses ${MANIFEST_PATH}; repack with everything under <model-name>/`,
        );
      }
    }
    if (loaded.manifest) await checkContent(reader, loaded.manifest, out);
    await checkData(reader, out);
    const entryCount = reader.entries().filter((e) => !(reader.kind === 'tgz' && e.path === '' && e.isDirectory)).length;
    return {
      ok: out.problems.length === 0,
      path,
      format: reader.kind,
      entryCount,
      manifestKind: loaded.kind,
      problems: out.problems,
      warnings: out.warnings,
      ...(out.handler ? { handler: out.handler } : {}),
    };
  } finally {
    await reader.close();
  }
}
