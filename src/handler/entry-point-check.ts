/**
 * Static checks that a handler module provides its entry point the way the workers resolve it (regex-level: no
 * code is run). Shared by `create` (a warning) and `verify` (a problem).
 */

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * MMS/TorchServe entry-point resolution on Python source, by regex: the module's own attribute `fn` if it
 * has one, otherwise exactly one class defined in the module. Returns null when resolvable, else why not.
 */
export function checkPythonEntryPoint(source: string, fn: string): string | null {
  const f = reEscape(fn);
  const hasFunction =
    new RegExp(`^(async[ \\t]+)?def[ \\t]+${f}[ \\t]*\\(`, 'm').test(source) ||
    new RegExp(`^${f}[ \\t]*(:[^=\\n]*)?=`, 'm').test(source) ||
    new RegExp(`^from[ \\t]+\\S+[ \\t]+import[ \\t]+[^#\\n]*\\b${f}\\b`, 'm').test(source) ||
    new RegExp(`^import[ \\t]+[^#\\n]*\\bas[ \\t]+${f}\\b`, 'm').test(source);
  if (hasFunction) return null;
  const classes = [...source.matchAll(/^class[ \t]+([A-Za-z_]\w*)[ \t]*(\(([^)]*)\))?[ \t]*:/gm)];
  if (classes.length === 1) {
    const [, name, , bases] = classes[0]!;
    const plainClass = !bases || /^\s*(object)?\s*$/.test(bases);
    // A class with base classes may inherit handle/initialize (TorchServe's BaseHandler); only a plain class must define them.
    if (plainClass) {
      const missing = [fn, 'initialize'].filter(
        (m) => !new RegExp(`^[ \\t]+(async[ \\t]+)?def[ \\t]+${reEscape(m)}[ \\t]*\\(`, 'm').test(source),
      );
      if (missing.length) return `its only class ${name} has no method ${missing.join(' or ')}, which the server calls`;
    }
    return null;
  }
  if (classes.length === 0) return `it defines no top-level function ${fn}() and no class`;
  return `it defines no top-level function ${fn}() and ${classes.length} classes (${classes.map((c) => c[1]).join(', ')}); the server needs the function, or exactly one class`;
}

/**
 * Whether JavaScript source provides `fn` as the Node worker resolves it: an export named `fn` in any of the usual
 * ESM/CommonJS spellings, or else a default-exported function or an exported class (the class entry point).
 */
export function hasNodeExport(source: string, fn: string): boolean {
  const f = reEscape(fn);
  return (
    [
      `export\\s+default\\s+(async\\s+)?(function|class)\\b`,
      `module\\.exports\\s*=\\s*(async\\s+)?(function|class)\\b`,
      `export\\s+class\\s+\\w+`,
      `export\\s+(async\\s+)?function\\s*\\*?\\s*${f}\\s*\\(`,
      `export\\s+(const|let|var|class)\\s+${f}\\b`,
      `export\\s*\\{[^}]*\\b${f}\\b[^}]*\\}`,
      `(module\\.)?exports\\.${f}\\s*=`,
      `(module\\.)?exports\\[\\s*['"]${f}['"]\\s*\\]\\s*=`,
      `module\\.exports\\s*=\\s*\\{[^}]*\\b${f}\\b`,
    ].some((p) => new RegExp(p).test(source)) || exportsDeclaredClassOrFunction(source)
  );
}

/** `module.exports = Name` / `export default Name`, where Name is a class or function declared in the module. */
function exportsDeclaredClassOrFunction(source: string): boolean {
  for (const m of source.matchAll(/(?:module\.exports\s*=|export\s+default)\s*([A-Za-z_$][\w$]*)\s*;?\s*$/gm)) {
    if (new RegExp(`\\b(class|function)\\s+${reEscape(m[1]!)}\\b`).test(source)) return true;
  }
  return false;
}
