import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (where package.json lives), found from this module whether run from src or dist. */
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot locate the package root from ${import.meta.url}`);
    dir = parent;
  }
}

export const PACKAGE_ROOT = findPackageRoot();

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

/** Our own version: written as `archiverVersion` and reported as `server_version`. */
export const TOOL_VERSION: string = pkg.version;
export const TOOL_NAME: string = pkg.name;

export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}
