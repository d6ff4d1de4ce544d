/**
 * JSON as Gson's lenient reader accepts it (MMS parses a JSON register body with `Gson.fromJson(String)`,
 * which is lenient): single-quoted and unquoted strings, `//`, `#` and `/* *\/` comments, `=` or `=>` between
 * name and value, `;` between elements. MMS's own test posts `{'url':'noop.mar', 'initial_workers':'1'}`.
 * Returns undefined when the text is not even lenient JSON.
 */
export function parseLenientJson(text: string): unknown {
  try {
    const p = new LenientParser(text);
    const value = p.value();
    p.skipSpace();
    return p.atEnd() ? value : undefined;
  } catch {
    return undefined;
  }
}

// characters that end an unquoted literal (Gson JsonReader#isLiteral)
const NOT_LITERAL = new Set([...'/\\;#=:,{}[] \t\f\r\n']);
const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

class LenientParser {
  readonly #s: string;
  #i = 0;

  constructor(s: string) {
    this.#s = s;
  }

  atEnd(): boolean {
    return this.#i >= this.#s.length;
  }

  skipSpace(): void {
    const s = this.#s;
    while (this.#i < s.length) {
      const c = s[this.#i]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') this.#i++;
      else if (c === '#' || s.startsWith('//', this.#i)) {
        const nl = s.indexOf('\n', this.#i);
        this.#i = nl < 0 ? s.length : nl + 1;
      } else if (s.startsWith('/*', this.#i)) {
        const end = s.indexOf('*/', this.#i + 2);
        if (end < 0) throw new Error('unterminated comment');
        this.#i = end + 2;
      } else return;
    }
  }

  value(): unknown {
    this.skipSpace();
    const c = this.#s[this.#i];
    if (c === '{') return this.#object();
    if (c === '[') return this.#array();
    if (c === '"' || c === "'") return this.#quoted();
    const lit = this.#literal();
    const lower = lit.toLowerCase();
    if (lower === 'true') return true;
    if (lower === 'false') return false;
    if (lower === 'null') return null;
    if (/^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(lit)) return Number(lit);
    return lit;
  }

  #object(): Record<string, unknown> {
    this.#i++; // {
    const out: Record<string, unknown> = {};
    for (;;) {
      this.skipSpace();
      if (this.#s[this.#i] === '}') {
        this.#i++;
        return out;
      }
      const c = this.#s[this.#i];
      const name = c === '"' || c === "'" ? this.#quoted() : this.#literal();
      this.skipSpace();
      if (this.#s[this.#i] === ':') this.#i++;
      else if (this.#s[this.#i] === '=') this.#i += this.#s[this.#i + 1] === '>' ? 2 : 1;
      else throw new Error('expected a name separator');
      out[name] = this.value();
      this.skipSpace();
      const sep = this.#s[this.#i];
      if (sep === ',' || sep === ';') this.#i++;
      else if (sep !== '}') throw new Error('expected , or }');
    }
  }

  #array(): unknown[] {
    this.#i++; // [
    const out: unknown[] = [];
    for (;;) {
      this.skipSpace();
      if (this.#s[this.#i] === ']') {
        this.#i++;
        return out;
      }
      out.push(this.value());
      this.skipSpace();
      const sep = this.#s[this.#i];
      if (sep === ',' || sep === ';') this.#i++;
      else if (sep !== ']') throw new Error('expected , or ]');
    }
  }

  #quoted(): string {
    const s = this.#s;
    const quote = s[this.#i++]!;
    let out = '';
    for (;;) {
      if (this.#i >= s.length) throw new Error('unterminated string');
      const c = s[this.#i++]!;
      if (c === quote) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = s[this.#i++];
      if (e === undefined) throw new Error('unterminated escape');
      if (e === 'u') {
        const hex = s.slice(this.#i, this.#i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new Error('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.#i += 4;
      } else {
        out += ESCAPES[e] ?? e;
      }
    }
  }

  #literal(): string {
    const start = this.#i;
    while (this.#i < this.#s.length && !NOT_LITERAL.has(this.#s[this.#i]!)) this.#i++;
    if (this.#i === start) throw new Error('expected a value');
    return this.#s.slice(start, this.#i);
  }
}
