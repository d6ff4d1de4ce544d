/**
 * Copies of large stored entries done inside the kernel (copy_file_range(2)), for zip-extract.ts. Node 20 exposes no
 * way to copy a byte range of one file into another inside the kernel (fs.copyFile copies whole files, and no
 * well-kept package offers copy_file_range), but Python's os module does, so a short-lived helper process
 * (`python3 -I -S`: no site, no environment, starts in a few ms) does the copies it is given on stdin, and the
 * CRC-32 of each range from a window-by-window mmap of the archive in a second thread, while the kernel copies.
 *
 * Why: a copy through user space moves every byte twice, and on some hosts (the VM these benchmarks run on) pages
 * written from user space become far slower once a few hundred MB are dirty: 256 MiB took ~600 ms by read/write
 * against ~70 ms by copy_file_range (issue 14). Tried and left (session 7): writing each 1 MiB from an mmap of the
 * archive right after its CRC (one pass over memory) used a third less CPU, but stalled the same way (2.3 s for a GiB
 * in one run of three), where copy_file_range ran ~350 ms every time. The entry's CRC-32 is still checked against
 * the archive's record by the caller (integrity.ts), so nothing is trusted that was not checked before.
 *
 * Anything the helper cannot do (no Python, another filesystem, a kernel without the call, the helper dying) is
 * answered `unsupported`, and the caller copies that entry in user space as before; an I/O error (no space, EIO) is
 * an error, as it would be there. MAR_KERNEL_COPY=0 turns the helper off.
 */

import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

/**
 * Stored entries from this size on go to the KernelCopier (below it, starting its process costs more than it saves),
 * and start at a page boundary in the archives we write (zip-writer.ts), where such a copy moves whole pages.
 */
export const KERNEL_COPY_BYTES = 16 << 20;

/** One entry's data: `length` bytes at `start` of `source`, into `target` (created by the caller, empty). */
export interface RangeCopy {
  source: string;
  start: number;
  length: number;
  target: string;
}

/** The CRC-32 of the bytes copied, or why the copy was not made (the caller then copies in user space). */
export type RangeCopyResult = { crc: number } | { unsupported: string };

/** What an extraction needs of a copier: a KernelCopier, or a lease on one shared with other extractions. */
export interface RangeCopier {
  copy(job: RangeCopy): Promise<RangeCopyResult>;
  /** This extraction is done with it. */
  close(): void;
}

/** The helper: one thread per copy; the CRC of the source range is read through 16 MiB mmap windows (bounded RSS). */
const HELPER = String.raw`
import errno, json, mmap, os, sys, threading, zlib
UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF, errno.EPERM, errno.ETXTBSY}
WINDOW = 16 << 20
out = threading.Lock()
def reply(msg):
    with out:
        try:
            sys.stdout.write(json.dumps(msg) + "\n")
            sys.stdout.flush()
        except OSError:
            os._exit(0)
def crc_of(fd, start, length):
    crc, pos, end, gran = 0, start, start + length, mmap.ALLOCATIONGRANULARITY
    while pos < end:
        base = pos - pos % gran
        size = min(base + WINDOW, end) - base
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ, offset=base) as m:
            with memoryview(m) as view:
                crc = zlib.crc32(view[pos - base:size], crc)
        pos = base + size
    return crc
def copy(fi, fo, start, length):
    done = 0
    while done < length:
        n = os.copy_file_range(fi, fo, min(length - done, 1 << 30), start + done, done)
        if n == 0:
            raise EOFError("the archive ended before the entry's data did")
        done += n
fallocate = None
fallocate_lock = threading.Lock()
def reserve(fo, length):
    # The file's blocks in one call, not one page at a time as the copy writes them (ext4: a quarter less system
    # time). fallocate(2) itself, not os.posix_fallocate: glibc emulates that with a write per block where the file
    # system has no fallocate; there this step is skipped.
    global fallocate
    with fallocate_lock:
        if fallocate is None:
            try:
                import ctypes
                call = ctypes.CDLL(None, use_errno=True).fallocate
                call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
                fallocate = (call, ctypes.get_errno)
            except (ImportError, OSError, AttributeError):
                fallocate = False
    if fallocate and length > 0 and fallocate[0](fo, 0, 0, length) != 0:
        e = fallocate[1]()
        if e not in UNSUPPORTED:
            raise OSError(e, os.strerror(e))
def job(msg):
    try:
        fi = os.open(msg["source"], os.O_RDONLY | os.O_CLOEXEC)
        try:
            fo = os.open(msg["target"], os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                reserve(fo, msg["length"])
                box = {}
                def crc():
                    try:
                        box["crc"] = crc_of(fi, msg["start"], msg["length"])
                    except BaseException as e:
                        box["error"] = e
                t = threading.Thread(target=crc)
                t.start()
                try:
                    copy(fi, fo, msg["start"], msg["length"])
                finally:
                    t.join()
                if "error" in box:
                    raise box["error"]
                reply({"id": msg["id"], "crc": box["crc"]})
            finally:
                os.close(fo)
        finally:
            os.close(fi)
    except OSError as e:
        if e.errno in UNSUPPORTED:
            reply({"id": msg["id"], "unsupported": str(e)})
        else:
            reply({"id": msg["id"], "error": e.strerror or str(e), "code": errno.errorcode.get(e.errno, "EIO")})
    except BaseException as e:
        reply({"id": msg["id"], "unsupported": repr(e)})
for line in sys.stdin:
    threading.Thread(target=job, args=(json.loads(line),), daemon=True).start()
`;

interface Pending {
  job: RangeCopy;
  resolve: (r: RangeCopyResult) => void;
  reject: (err: Error) => void;
}

/**
 * The helper process, shared by the extractions that overlap (runtime/extraction-copier.ts): spawned on the first
 * copy, ended by close() (or when this process exits: its stdin closes). A copier that failed once answers every
 * later copy `unsupported` at once.
 */
export class KernelCopier implements RangeCopier {
  readonly #python: string;
  #child: ChildProcessByStdio<Writable, Readable, null> | null = null;
  #gone: string | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #buffered = '';

  constructor(python: string) {
    this.#python = python;
  }

  /** Copies `job` in the kernel; rejects only with the I/O error the copy hit (code and path set, as fs errors). */
  copy(job: RangeCopy): Promise<RangeCopyResult> {
    if (this.#gone !== null) return Promise.resolve({ unsupported: this.#gone });
    const child = this.#start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { job, resolve, reject });
      child.stdin.write(`${JSON.stringify({ id, ...job })}\n`);
    });
  }

  /** Ends the helper (copies still running are abandoned: the caller is done with them). */
  close(): void {
    this.#end('closed');
    this.#child?.stdin.end();
    this.#child = null;
  }

  #start(): ChildProcessByStdio<Writable, Readable, null> {
    if (this.#child !== null) return this.#child;
    const child = spawn(this.#python, ['-I', '-S', '-c', HELPER], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.#child = child;
    child.on('error', (err) => this.#end(`cannot run ${this.#python}: ${err.message}`));
    child.on('exit', (code, signal) => this.#end(`the copy helper exited (${signal ?? `code ${code}`})`));
    // an EPIPE after the helper died is reported by 'exit'
    child.stdin.on('error', () => undefined);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => this.#read(text));
    return child;
  }

  #read(text: string): void {
    this.#buffered += text;
    for (let nl = this.#buffered.indexOf('\n'); nl >= 0; nl = this.#buffered.indexOf('\n')) {
      const line = this.#buffered.slice(0, nl);
      this.#buffered = this.#buffered.slice(nl + 1);
      let msg: { id: number; crc?: number; unsupported?: string; error?: string; code?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        // not our helper's output (a python that prints on start?): give up on it
        this.#end(`the copy helper printed ${JSON.stringify(line.slice(0, 80))}`);
        this.#child?.kill();
        return;
      }
      const p = this.#pending.get(msg.id);
      if (p === undefined) continue;
      this.#pending.delete(msg.id);
      if (msg.crc !== undefined) p.resolve({ crc: msg.crc });
      else if (msg.error !== undefined) {
        const code = msg.code ?? 'EIO';
        p.reject(Object.assign(new Error(`${code}: ${msg.error}, copy_file_range '${p.job.target}'`), { code, path: p.job.target }));
      } else p.resolve({ unsupported: msg.unsupported ?? 'unknown' });
    }
  }

  /** No more copies: those waiting get `unsupported` (the caller copies them itself). */
  #end(why: string): void {
    this.#gone ??= why;
    for (const p of this.#pending.values()) p.resolve({ unsupported: why });
    this.#pending.clear();
  }
}

/** A copier running `python`, or null when MAR_KERNEL_COPY=0 or there is no Python to run. */
export function kernelCopier(python: string | null, env: NodeJS.ProcessEnv = process.env): KernelCopier | null {
  if (python === null || env['MAR_KERNEL_COPY'] === '0') return null;
  return new KernelCopier(python);
}
