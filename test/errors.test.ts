/**
 * The error registry against its documentation and its uses (as fastify tests its errors against its docs):
 * docs/errors.md lists exactly the registry's codes with the same exit code, HTTP status and MMS type, and every
 * code src/ raises is one the registry knows, including the ones TypeScript cannot check (plain JS, casts).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import ts from 'typescript';
import { ERROR_CODES, GRPC_STATUS, grpcStatusForHttp, handlerStatus, MarError } from '../src/errors.js';
import { packagePath } from '../src/util/package-info.js';

interface DocRow {
  exitCode: number;
  httpStatus: number;
  type: string;
  grpcStatus: string;
  when: string;
}

/** The rows of the table in docs/errors.md: | `CODE` | exit | status | `Type` | `GRPC_STATUS` | when |. */
function documentedCodes(): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  const text = readFileSync(packagePath('docs', 'errors.md'), 'utf8');
  for (const line of text.split('\n')) {
    if (!/^\|\s*`[A-Z0-9_]+`\s*\|/.test(line)) continue;
    const m = /^\|\s*`([A-Z0-9_]+)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|\s*`([A-Z_]+)`\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
    assert.ok(m, `docs/errors.md: a row without the six columns (code, exit, HTTP, type, gRPC, when): ${line}`);
    assert.ok(!rows.has(m[1]!), `docs/errors.md lists ${m[1]} twice`);
    rows.set(m[1]!, { exitCode: Number(m[2]), httpStatus: Number(m[3]), type: m[4]!, grpcStatus: m[5]!, when: m[6]! });
  }
  return rows;
}

describe('docs/errors.md and the registry', () => {
  const docs = documentedCodes();

  it('documents every registry code with its exit code, HTTP status, MMS type and gRPC status', () => {
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      const row = docs.get(code);
      assert.ok(row, `${code} is in src/errors.ts but not in docs/errors.md`);
      assert.equal(row.exitCode, spec.exitCode, `${code}: exit code`);
      assert.equal(row.httpStatus, spec.httpStatus, `${code}: HTTP status`);
      assert.equal(row.type, spec.type, `${code}: MMS type`);
      assert.equal(row.grpcStatus, spec.grpcStatus, `${code}: gRPC status`);
      assert.notEqual(row.when, '', `${code}: say when it happens`);
    }
  });

  it('documents no code the registry does not know', () => {
    for (const code of docs.keys()) assert.ok(code in ERROR_CODES, `docs/errors.md lists ${code}, which src/errors.ts does not know`);
  });

  it('registry statuses are HTTP statuses the servers can send, exit codes 1 or 2, gRPC errors (never OK)', () => {
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      assert.equal(handlerStatus(spec.httpStatus), spec.httpStatus, code);
      assert.ok(spec.exitCode === 1 || spec.exitCode === 2, code);
      assert.ok(spec.grpcStatus in GRPC_STATUS && spec.grpcStatus !== 'OK', `${code}: ${spec.grpcStatus}`);
    }
  });

  it("GRPC_STATUS holds gRPC's numbers (as @grpc/grpc-js has them)", () => {
    assert.deepEqual(Object.fromEntries(Object.entries(grpcStatus).filter(([k]) => Number.isNaN(Number(k)))), GRPC_STATUS);
  });
});

describe('gRPC status of an error', () => {
  it("is the registry's, or TorchServe's mapping of a status a handler chose", () => {
    assert.equal(new MarError('MODEL_NOT_FOUND', 'x').grpcStatus, 'NOT_FOUND');
    assert.equal(new MarError('TOKEN_INVALID', 'x').grpcStatus, 'PERMISSION_DENIED');
    // PredictionException(msg, 400) -> a PREDICTION_FAILED with httpStatus 400
    assert.equal(new MarError('PREDICTION_FAILED', 'x').grpcStatus, 'UNAVAILABLE');
    assert.equal(new MarError('PREDICTION_FAILED', 'x', { httpStatus: 400 }).grpcStatus, 'INVALID_ARGUMENT');
    assert.equal(new MarError('PREDICTION_FAILED', 'x', { httpStatus: 418 }).grpcStatus, 'FAILED_PRECONDITION');
    assert.equal(new MarError('PREDICTION_FAILED', 'x', { httpStatus: 507 }).grpcStatus, 'INTERNAL');
    assert.equal(new MarError('PREDICTION_FAILED', 'x', { httpStatus: 302 }).grpcStatus, 'UNKNOWN');
    assert.equal(grpcStatusForHttp(204), 'OK');
  });
});

describe('handlerStatus: what a status chosen by a handler or worker becomes', () => {
  it('keeps every status an HTTP response can carry, as MMS passes codes on', () => {
    for (const code of [100, 200, 201, 302, 404, 418, 429, 503, 507, 513, 599, 999]) assert.equal(handlerStatus(code), code);
  });

  it('turns anything else into 500', () => {
    for (const code of [42, 0, -1, 99, 1000, 2 ** 40, 404.5, NaN, Infinity, -Infinity])
      assert.equal(handlerStatus(code), 500, String(code));
  });

  it('a MarError never carries an invalid status override', () => {
    assert.equal(new MarError('PREDICTION_FAILED', 'x', { httpStatus: 42 }).httpStatus, 500);
    assert.equal(new MarError('PREDICTION_FAILED', 'x', { httpStatus: 1000 }).httpStatus, 500);
    assert.equal(new MarError('PREDICTION_FAILED', 'x', { httpStatus: 418 }).httpStatus, 418);
    assert.equal(new MarError('PREDICTION_FAILED', 'x').httpStatus, 503);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Codes raised in src/ (and bin/): every first argument of `new MarError(...)` / `wrapError(...)` must be a code
// the registry knows. TypeScript checks literal codes in .ts files; this also covers plain JS files, codes chosen
// by a condition or held in a variable, and refuses what no one can check statically (casts, computed strings).

const SOURCE_EXT = /\.(ts|js|mjs|cjs)$/;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (SOURCE_EXT.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

interface CodeUse {
  where: string;
  /** The literal codes this argument can be; null when they cannot be known statically. */
  codes: string[] | null;
}

/** The string literals an expression can evaluate to, following conditionals, parentheses and local declarations. */
function literalCodes(expr: ts.Expression, at: ts.Node): string[] | null {
  if (ts.isStringLiteral(expr) || ts.isNoSubstitutionTemplateLiteral(expr)) return [expr.text];
  if (ts.isParenthesizedExpression(expr)) return literalCodes(expr.expression, at);
  if (ts.isConditionalExpression(expr)) {
    const a = literalCodes(expr.whenTrue, at);
    const b = literalCodes(expr.whenFalse, at);
    return a && b ? [...a, ...b] : null;
  }
  if (ts.isIdentifier(expr)) return identifierCodes(expr.text, at);
  return null;
}

/** Resolves a name to the nearest enclosing parameter (by its type) or const/let (by its initializer). */
function identifierCodes(name: string, at: ts.Node): string[] | null {
  for (let n: ts.Node | undefined = at; n; n = n.parent) {
    if (ts.isFunctionLike(n)) {
      const param = n.parameters.find((p) => ts.isIdentifier(p.name) && p.name.text === name);
      if (param) return param.type ? typeCodes(param.type) : null;
    }
    const statements = ts.isBlock(n) || ts.isSourceFile(n) ? n.statements : null;
    for (const st of statements ?? []) {
      if (!ts.isVariableStatement(st)) continue;
      for (const d of st.declarationList.declarations) {
        if (!ts.isIdentifier(d.name) || d.name.text !== name) continue;
        if (d.type) return typeCodes(d.type);
        return d.initializer ? literalCodes(d.initializer, d) : null;
      }
    }
  }
  return null;
}

/** `ErrorCode` (checked by TypeScript) or a union of string literal types. */
function typeCodes(type: ts.TypeNode): string[] | null {
  if (ts.isTypeReferenceNode(type) && ts.isIdentifier(type.typeName) && type.typeName.text === 'ErrorCode') return [];
  if (ts.isLiteralTypeNode(type) && ts.isStringLiteral(type.literal)) return [type.literal.text];
  if (ts.isUnionTypeNode(type)) {
    const parts = type.types.map(typeCodes);
    return parts.every((p) => p !== null) ? (parts.flat() as string[]) : null;
  }
  return null;
}

function codeUses(root: string): { uses: CodeUse[]; casts: string[] } {
  const uses: CodeUse[] = [];
  const casts: string[] = [];
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    if (!/MarError|wrapError|ErrorCode/.test(text)) continue;
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const where = (n: ts.Node): string => `${relative(packagePath(), file)}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
    const visit = (n: ts.Node): void => {
      const callee = ts.isNewExpression(n) || ts.isCallExpression(n) ? n.expression : null;
      const name = callee && ts.isIdentifier(callee) ? callee.text : null;
      if ((name === 'MarError' && ts.isNewExpression(n)) || (name === 'wrapError' && ts.isCallExpression(n))) {
        const arg = (n as ts.NewExpression | ts.CallExpression).arguments?.[0];
        if (arg) uses.push({ where: where(n), codes: literalCodes(arg, n) });
      }
      if ((ts.isAsExpression(n) || ts.isTypeAssertionExpression(n)) && /\bErrorCode\b|ERROR_CODES/.test(n.type.getText(sf)))
        casts.push(where(n));
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return { uses, casts };
}

describe('codes raised in src/ are in the registry', () => {
  const found = [packagePath('src'), packagePath('bin')].map(codeUses);
  const uses = found.flatMap((f) => f.uses);
  const casts = found.flatMap((f) => f.casts);

  it('finds the raising sites (the scan works)', () => {
    assert.ok(uses.length > 100, `only ${uses.length} sites found`);
    assert.ok(
      uses.some((u) => u.codes?.includes('WORKER_OUT_OF_MEMORY')),
      'a code chosen by a condition is followed',
    );
  });

  it('every code passed to new MarError / wrapError is known', () => {
    const problems: string[] = [];
    for (const u of uses) {
      if (u.codes === null)
        problems.push(`${u.where}: the code cannot be known statically; pass a literal code (or a variable of literal codes)`);
      for (const c of u.codes ?? []) if (!(c in ERROR_CODES)) problems.push(`${u.where}: ${c} is not in the registry (src/errors.ts)`);
    }
    assert.deepEqual(problems, []);
  });

  it('no cast makes a string an ErrorCode (TypeScript could not check it)', () => {
    assert.deepEqual(casts, []);
  });
});
