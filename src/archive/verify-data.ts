/**
 * The data pass of verifyArchive: every file read once, its CRC and size (zip) checked, and its sha256 and size
 * compared with MAR-INF/FILES.sha256 when the archive has one.
 */

import { createHash } from 'node:crypto';
import { MarError } from '../errors.js';
import { DIGESTS_PATH } from '../manifest/manifest.js';
import { LimitMeter } from './limits.js';
import type { ArchiveEntryInfo, ArchiveReader } from './read.js';
import { type Collector, type ProblemCode, REBUILD } from './verify-report.js';

const DIGESTS_MAX_BYTES = 64 << 20;

interface DigestLine {
  sha256: string;
  size?: number;
  line: number;
}

/** Parses `<sha256>  <size>  <path>` lines (also `<sha256>  <path>` and sha256sum's `*path`). */
export function parseDigestFile(text: string): { digests: Map<string, DigestLine>; errors: string[] } {
  const digests = new Map<string, DigestLine>();
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) return;
    const withSize = /^([0-9a-fA-F]{64}) +(\d+) +\*?(.+)$/.exec(line);
    const withoutSize = withSize ? null : /^([0-9a-fA-F]{64}) +\*?(.+)$/.exec(line);
    if (withSize) digests.set(withSize[3]!, { sha256: withSize[1]!.toLowerCase(), size: Number(withSize[2]), line: i + 1 });
    else if (withoutSize) digests.set(withoutSize[2]!, { sha256: withoutSize[1]!.toLowerCase(), line: i + 1 });
    else errors.push(`line ${i + 1} is not "<sha256>  <size>  <path>"`);
  });
  return { digests, errors };
}

function classifyDataError(err: unknown): ProblemCode {
  const kind = err instanceof MarError ? (err.details as { kind?: string } | undefined)?.kind : undefined;
  return kind === 'crc' ? 'CRC_MISMATCH' : kind === 'size' ? 'SIZE_MISMATCH' : 'DATA_UNREADABLE';
}

function shortMessage(err: unknown, archive: string): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.startsWith(`${archive}: `) ? msg.slice(archive.length + 2) : msg;
}

/** Reads every file's data once: CRC and size (zip), and sha256 + size against FILES.sha256 when present. */
export async function checkData(reader: ArchiveReader, out: Collector): Promise<void> {
  let digests: Map<string, DigestLine> | null = null;
  const digestEntry = reader.find(DIGESTS_PATH);
  if (digestEntry) {
    try {
      const parsed = parseDigestFile((await reader.readEntry(digestEntry, DIGESTS_MAX_BYTES)).toString('utf8'));
      for (const e of parsed.errors) out.problem('DIGEST_FILE_INVALID', e, DIGESTS_PATH);
      digests = parsed.digests;
    } catch (err) {
      out.problem('DIGEST_FILE_INVALID', `cannot be read: ${shortMessage(err, reader.path)}`, DIGESTS_PATH);
    }
  }
  const root = reader.tgzRoot;
  const lookup = (path: string): [string, DigestLine] | undefined => {
    for (const key of root ? [path, `${root}/${path}`] : [path]) {
      const d = digests?.get(key);
      if (d) return [key, d];
    }
    return undefined;
  };
  const seen = new Set<string>();
  // The data pass inflates everything: held to the reader's limits, like extraction (a bomb stops here too).
  const meter = new LimitMeter(
    reader.path,
    reader.kind === 'dir' ? Number.POSITIVE_INFINITY : reader.archiveBytes,
    reader.limits,
    reader.limitHint,
  );
  let limited = false;
  const consume = async (e: ArchiveEntryInfo, stream: AsyncIterable<Buffer>): Promise<void> => {
    const listed = digests ? lookup(e.path) : undefined;
    const hash = listed ? createHash('sha256') : null;
    let bytes = 0;
    try {
      for await (const chunk of stream) {
        meter.addBytes(chunk.length);
        hash?.update(chunk);
        bytes += chunk.length;
      }
    } catch (err) {
      if (err instanceof MarError && err.code === 'ARCHIVE_LIMIT') {
        limited = true;
        out.problem('ARCHIVE_LIMIT', `${shortMessage(err, reader.path)}; the rest of the data was not checked`);
        return;
      }
      out.problem(classifyDataError(err), shortMessage(err, reader.path).replace(/^entry \S+ /, ''), e.rawPath);
      return;
    }
    if (!digests || e.path === DIGESTS_PATH) return;
    if (!listed) {
      if (!e.path.startsWith('MAR-INF/'))
        out.problem('DIGEST_UNLISTED', `is not listed in ${DIGESTS_PATH}: it was added or renamed after packing; ${REBUILD}`, e.rawPath);
      return;
    }
    seen.add(listed[0]);
    const [, d] = listed;
    const actual = hash!.digest('hex');
    if (d.size !== undefined && d.size !== bytes) {
      out.problem(
        'DIGEST_MISMATCH',
        `has ${bytes} bytes but ${DIGESTS_PATH} records ${d.size}: the file changed after packing; ${REBUILD}`,
        e.rawPath,
      );
    } else if (actual !== d.sha256) {
      out.problem(
        'DIGEST_MISMATCH',
        `sha256 ${actual} differs from ${d.sha256} recorded in ${DIGESTS_PATH}: the file changed after packing; ${REBUILD}`,
        e.rawPath,
      );
    }
  };

  if (reader.kind === 'tgz') {
    // Opening a tgz already inflated every byte and gzip checked its CRC-32: a second pass is only worth it for digests.
    if (!digests) return;
    try {
      await reader.walk(async (e, stream) => {
        if (stream && !limited) await consume(e, stream);
      });
    } catch (err) {
      out.problem('ARCHIVE_CORRUPT', shortMessage(err, reader.path));
    }
  } else {
    for (const e of reader.entries()) {
      if (limited) break;
      if (e.type !== 'file' || e.encrypted || e.method === 'other') continue;
      let stream;
      try {
        stream = await reader.openEntryStream(e);
      } catch (err) {
        out.problem(classifyDataError(err), shortMessage(err, reader.path).replace(/^entry \S+ /, ''), e.rawPath);
        continue;
      }
      await consume(e, stream);
    }
  }
  if (digests) {
    for (const [path] of digests) {
      if (!seen.has(path)) out.problem('DIGEST_MISSING_ENTRY', `is listed in ${DIGESTS_PATH} but is not in the archive; ${REBUILD}`, path);
    }
  }
}
