/**
 * Which process holds a cache lock or uses a cache entry, told apart well enough that a restarted container (the
 * same host name, and pid 1 again) or a reused pid never passes for the process that wrote the marker: host name,
 * boot id and the process's start time (Linux /proc) go with the pid.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface ProcessIdentity {
  pid: number;
  host: string;
  /** Linux boot id, or null elsewhere. */
  boot: string | null;
  /** Start time of the process in clock ticks since boot (Linux /proc/<pid>/stat field 22), or null. */
  start: string | null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Field 22 of /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses, so count from the last ')'. */
function startTime(pid: number): string | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null;
}

let self: ProcessIdentity | null = null;

/** This process's identity (computed once). */
export function selfIdentity(): ProcessIdentity {
  self ??= { pid: process.pid, host: hostname(), boot: readOrNull('/proc/sys/kernel/random/boot_id'), start: startTime(process.pid) };
  return self;
}

/** Parses an identity written by writeIdentity-style JSON; null when it is not one. */
export function parseIdentity(text: string): ProcessIdentity | null {
  try {
    const v = JSON.parse(text) as Partial<ProcessIdentity>;
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.host !== 'string') return null;
    return {
      pid: v.pid,
      host: v.host,
      boot: typeof v.boot === 'string' ? v.boot : null,
      start: typeof v.start === 'string' ? v.start : null,
    };
  } catch {
    return null;
  }
}

/**
 * Whether the process is still running: true or false on this host, 'unknown' for another host (a cache on a
 * shared volume), where the caller has to judge by age.
 */
export function isAlive(id: ProcessIdentity): boolean | 'unknown' {
  const me = selfIdentity();
  if (id.host !== me.host) return 'unknown';
  if (id.boot !== null && me.boot !== null && id.boot !== me.boot) return false;
  if (id.pid === me.pid) return id.start === me.start;
  try {
    process.kill(id.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (id.start === null) return true;
  const now = startTime(id.pid);
  return now === null || now === id.start;
}

/** Whether two identities are the same process. */
export function sameProcess(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.host === b.host && a.boot === b.boot && a.start === b.start;
}
