import { type KernelCopier, kernelCopier, type RangeCopier } from '../archive/kernel-copy.js';
import { resolvePython } from './python-resolve.js';

/** The helper the extractions running now share, and how many of them hold it. */
let shared: { copier: KernelCopier; leases: number } | null = null;

/**
 * The in-kernel copier (archive/kernel-copy.ts) for one extraction of the extraction cache or `model-archiver
 * extract`, run by the python3 on PATH (a pyenv shim's interpreter, found without running the shim). Extractions that
 * overlap share one helper process: a server loading four startup models starts one interpreter, not four (each
 * start is ~15 ms of CPU, while the loads are CPU-bound). Its process starts only when an archive has a large stored
 * entry, and ends when the last extraction holding it closes its lease.
 */
export function extractionCopier(): RangeCopier | null {
  if (shared === null) {
    const copier = kernelCopier(resolvePython('python3', process.cwd()).command);
    if (copier === null) return null;
    shared = { copier, leases: 0 };
  }
  const held = shared;
  held.leases++;
  let closed = false;
  return {
    copy: (job) => held.copier.copy(job),
    close: () => {
      if (closed) return;
      closed = true;
      if (--held.leases > 0) return;
      held.copier.close();
      if (shared === held) shared = null;
    },
  };
}
