import { resolve, sep } from 'node:path';

/** Why an entry name is not safe to write below an extraction directory. */
export type UnsafeReason = 'absolute' | 'drive-letter' | 'parent-segment' | 'nul-byte' | 'empty';

export interface EntryPathCheck {
  /** The name's segments with `\` treated as a separator and `.`/empty segments dropped. */
  segments: string[];
  /** Set when the name would escape (or cannot be placed in) the target directory. */
  unsafe?: UnsafeReason;
  /** Whether the raw name contains a backslash (Java on Linux keeps it as a literal character). */
  hasBackslash: boolean;
}

const REASON_TEXT: Record<UnsafeReason, string> = {
  absolute: 'is an absolute path',
  'drive-letter': 'starts with a drive letter',
  'parent-segment': 'contains a ".." segment',
  'nul-byte': 'contains a NUL byte',
  empty: 'is empty',
};

export function describeUnsafe(reason: UnsafeReason): string {
  return REASON_TEXT[reason];
}

/**
 * Checks an archive entry name the strict way: backslashes count as separators (a Windows server, or a
 * later copy, would treat them so), and any absolute path, drive letter or `..` segment is refused.
 */
export function checkEntryPath(name: string): EntryPathCheck {
  const hasBackslash = name.includes('\\');
  const normalized = name.replace(/\\/g, '/');
  const segments = normalized.split('/').filter((s) => s !== '' && s !== '.');
  let unsafe: UnsafeReason | undefined;
  if (name.includes('\0')) unsafe = 'nul-byte';
  else if (normalized.startsWith('/')) unsafe = 'absolute';
  else if (/^[A-Za-z]:/.test(normalized)) unsafe = 'drive-letter';
  else if (segments.includes('..')) unsafe = 'parent-segment';
  else if (normalized.trim() === '') unsafe = 'empty';
  return unsafe ? { segments, unsafe, hasBackslash } : { segments, hasBackslash };
}

/**
 * Resolves `/`-separated relative segments below root and proves the result stays inside it.
 * Returns undefined for anything that would land on root itself or outside it.
 */
export function resolveInside(root: string, segments: readonly string[]): string | undefined {
  const base = resolve(root);
  const target = resolve(base, ...segments);
  if (target === base || !target.startsWith(base + sep)) return undefined;
  return target;
}
