/**
 * The host gauges TorchServe's metric_collector.py reports (ts/metrics/system_metrics.py, psutil): CPU, memory and
 * disk of the machine the server runs on. Read when asked (a scrape, or the log mode's timer), never per request.
 */
import { statfs } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';
import type { FrontendMetric } from './ts-metrics.js';

export type HostMetric = Extract<
  FrontendMetric,
  'CPUUtilization' | 'MemoryUsed' | 'MemoryAvailable' | 'MemoryUtilization' | 'DiskUsage' | 'DiskUtilization' | 'DiskAvailable'
>;

const MB = 1024 * 1024;
const GB = 1024 * MB;

interface CpuTimes {
  busy: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  return { busy, total };
}

/** psutil's percent: one decimal. */
const percent = (part: number, whole: number): number => (whole > 0 ? Math.round((1000 * part) / whole) / 10 : 0);

/** Reads the host gauges; CPU utilization is over the time since the previous read (psutil.cpu_percent()). */
export class HostMetrics {
  #lastCpu: CpuTimes = cpuTimes();

  async read(): Promise<Array<[HostMetric, number]>> {
    const now = cpuTimes();
    const cpu = percent(now.busy - this.#lastCpu.busy, now.total - this.#lastCpu.total);
    this.#lastCpu = now;
    const total = totalmem();
    // Node's freemem is the kernel's MemAvailable on Linux (psutil's "available"); used = total - available
    const available = freemem();
    const out: Array<[HostMetric, number]> = [
      ['CPUUtilization', cpu],
      ['MemoryUsed', (total - available) / MB],
      ['MemoryAvailable', available / MB],
      ['MemoryUtilization', percent(total - available, total)],
    ];
    try {
      // psutil.disk_usage('/'): used = (blocks - bfree) * bsize, free = bavail * bsize, percent = used / (used + free)
      const fs = await statfs('/');
      const used = (fs.blocks - fs.bfree) * fs.bsize;
      const free = fs.bavail * fs.bsize;
      out.push(['DiskUsage', used / GB], ['DiskUtilization', percent(used, used + free)], ['DiskAvailable', free / GB]);
    } catch {
      // no statfs (or no /): the disk gauges are left out, as the collector skips what it cannot read
    }
    return out;
  }
}
