/**
 * Gitignore-like exclusion rules for `--exclude` and `.marignore`: `*`, `?`, `[abc]`, `**`, a trailing `/` for
 * directories only, a leading `/` (or any inner `/`) anchors to the root, `!` re-includes, `#` starts a comment.
 * Paths are archive paths relative to the walked root, `/`-separated.
 */

interface Rule {
  pattern: string;
  regex: RegExp;
  negate: boolean;
  dirOnly: boolean;
}

function globToRegexSource(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        const next = glob[i + 2];
        if (atStart && next === '/') {
          out += '(?:.*/)?'; // `**/` matches zero or more directories
          i += 2;
        } else if (atStart && next === undefined) {
          out += '.*'; // trailing `/**` matches everything inside
          i += 1;
        } else {
          out += '[^/]*';
          i += 1;
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) {
        out += '\\[';
      } else {
        let body = glob.slice(i + 1, close);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        out += `[${body.replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else if (c === '\\' && i + 1 < glob.length) {
      out += glob[i + 1]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      i += 1;
    } else {
      out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return out;
}

function compileRule(line: string): Rule | undefined {
  let p = line.replace(/(?<!\\)\s+$/, '');
  if (p === '' || p.startsWith('#')) return undefined;
  const negate = p.startsWith('!');
  if (negate) p = p.slice(1);
  if (p.startsWith('\\#') || p.startsWith('\\!')) p = p.slice(1);
  const dirOnly = p.endsWith('/');
  if (dirOnly) p = p.replace(/\/+$/, '');
  if (p === '') return undefined;
  const anchored = p.includes('/');
  if (p.startsWith('/')) p = p.slice(1);
  const body = globToRegexSource(p);
  const regex = new RegExp(anchored ? `^${body}$` : `^(?:.*/)?${body}$`, 's');
  return { pattern: line, regex, negate, dirOnly };
}

export class IgnoreRules {
  readonly #rules: Rule[];

  constructor(patterns: readonly string[] = []) {
    this.#rules = patterns.map(compileRule).filter((r): r is Rule => r !== undefined);
  }

  /** Rules from the text of an ignore file (one pattern per line). */
  static parse(text: string): string[] {
    return text.split(/\r?\n/);
  }

  /** A new rule set with more patterns after these (later rules win, as in gitignore). */
  concat(patterns: readonly string[]): IgnoreRules {
    return new IgnoreRules([...this.#rules.map((r) => r.pattern), ...patterns]);
  }

  get size(): number {
    return this.#rules.length;
  }

  /** Whether a path is excluded. The last matching rule decides; `!` rules re-include. */
  isIgnored(relPath: string, isDir: boolean): boolean {
    let ignored = false;
    for (const rule of this.#rules) {
      if (rule.dirOnly && !isDir) continue;
      if (rule.regex.test(relPath)) ignored = !rule.negate;
    }
    return ignored;
  }
}
