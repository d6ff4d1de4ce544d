/**
 * MAR-INF/FILES.sha256: one line per archived file (every entry except this file itself), sorted byte-wise by path:
 *
 *     <sha256 hex>  <size in bytes>  <archive path>\n
 *
 * Paths are relative to the archive root (for tgz: without the `<model-name>/` prefix) and never contain
 * control characters, so a line splits on the first two double spaces.
 */

export interface DigestLine {
  sha256: string;
  size: number;
  path: string;
}

export function compareArchivePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function formatDigests(lines: readonly DigestLine[]): Buffer {
  const sorted = [...lines].sort((a, b) => compareArchivePaths(a.path, b.path));
  return Buffer.from(sorted.map((l) => `${l.sha256}  ${l.size}  ${l.path}\n`).join(''), 'utf8');
}

/** Parses the digest file; also accepts `<sha256>  <path>` lines (sha256sum style). Bad lines are returned as errors. */
export function parseDigests(text: string): { lines: DigestLine[]; errors: string[] } {
  const lines: DigestLine[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const m = /^([0-9a-f]{64})  (?:(\d+)  )?(.+)$/.exec(raw);
    if (!m) {
      errors.push(`line ${i + 1}: expected "<sha256>  <size>  <path>"`);
      return;
    }
    lines.push({ sha256: m[1]!, size: m[2] === undefined ? -1 : Number(m[2]), path: m[3]! });
  });
  return { lines, errors };
}
