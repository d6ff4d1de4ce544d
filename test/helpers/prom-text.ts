/**
 * A strict parser of the Prometheus text exposition format 0.0.4 (what a Prometheus server scrapes), for tests:
 * it throws on anything the format does not allow, instead of skipping it.
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

export interface PromSample {
  /** The sample's own name (a histogram's `<family>_bucket` etc.). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | undefined;
  samples: PromSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count', ''],
};

function parseValue(raw: string, where: string): number {
  if (raw === 'NaN') return NaN;
  if (raw === '+Inf' || raw === 'Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) throw new Error(`${where}: bad value ${JSON.stringify(raw)}`);
  return Number(raw);
}

function unescapeText(s: string, where: string, quotes: boolean): string {
  return s.replace(/\\(.)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    if (c === '"' && quotes) return '"';
    throw new Error(`${where}: bad escape \\${c}`);
  });
}

/** Parses `text`; throws an Error naming the line for any violation of the format. */
export function parsePrometheusText(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const lines = text === '' ? [] : text.slice(0, -1).split('\n');
  const closed = new Set<string>();
  let current: PromFamily | null = null;
  const seen = new Set<string>();
  const family = (name: string, where: string): PromFamily => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: 'untyped', help: undefined, samples: [] };
      families.set(name, f);
    }
    if (current !== f) {
      if (closed.has(name)) throw new Error(`${where}: lines of ${name} are not one group`);
      if (current) closed.add(current.name);
      current = f;
    }
    return f;
  };
  lines.forEach((line, i) => {
    const where = `line ${i + 1} ${JSON.stringify(line)}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = new RegExp(`^#\\s+(HELP|TYPE)\\s+(${NAME})(?:\\s(.*))?$`).exec(line);
      if (!m) return; // a comment
      const f = family(m[2]!, where);
      if (m[1] === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP`);
        f.help = unescapeText(m[3] ?? '', where, false);
      } else {
        const type = (m[3] ?? '').trim();
        if (!TYPES.has(type)) throw new Error(`${where}: bad type`);
        if (f.samples.length > 0 || f.type !== 'untyped') throw new Error(`${where}: TYPE after samples or twice`);
        f.type = type as PromFamily['type'];
      }
      return;
    }
    const m = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+(-?\\d+))?\\s*$`).exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const name = m[1]!;
    const labels: Record<string, string> = {};
    let rest = m[2] ?? '';
    const pair = new RegExp(`^\\s*(${LABEL})\\s*=\\s*"((?:[^"\\\\\\n]|\\\\.)*)"\\s*(,|$)`);
    while (rest.trim() !== '') {
      const p = pair.exec(rest);
      if (!p) throw new Error(`${where}: bad labels`);
      if (p[1]! in labels) throw new Error(`${where}: label ${p[1]} twice`);
      labels[p[1]!] = unescapeText(p[2]!, where, true);
      rest = rest.slice(p[0].length);
    }
    // the family: the current one if the name is one of its sample names, else the name itself
    const cur = current as PromFamily | null;
    const ofCurrent = cur !== null && (SUFFIXES[cur.type] ?? ['']).some((s) => name === cur.name + s);
    const f = ofCurrent ? cur! : family(name, where);
    if (!ofCurrent && f.type !== 'untyped' && f.type !== 'counter' && f.type !== 'gauge') {
      throw new Error(`${where}: sample ${name} does not belong to ${f.type} ${f.name}`);
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${where}: duplicate sample`);
    seen.add(key);
    f.samples.push({ name, labels, value: parseValue(m[3]!, where) });
  });
  return families;
}
