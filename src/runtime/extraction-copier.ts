import { type KernelCopier, kernelCopier } from '../archive/kernel-copy.js';
import { resolvePython } from './python-resolve.js';

/**
 * The in-kernel copier of one extraction (archive/kernel-copy.ts), for the extraction cache and `model-archiver
 * extract`: run by the python3 on PATH (a pyenv shim's interpreter, found without running the shim). Its process
 * starts only if the archive has a large stored entry; the caller closes it.
 */
export function extractionCopier(): KernelCopier | null {
  return kernelCopier(resolvePython('python3', process.cwd()).command);
}
