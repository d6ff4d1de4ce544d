/**
 * The process-wide task slots of zip extraction (zip-extract.ts): how many entries, or chunks of one, are in flight in
 * this process across every extraction running in it, and the chunk buffers they use.
 */

/** Bytes per positional read/write of a stored entry, and the largest entry inflated in one call. */
export const CHUNK_BYTES = 2 << 20;
/**
 * Entries (or chunks of one) in flight in this process, across every extraction running in it (the server loads
 * several models at once): the size of libuv's default thread pool, which does the reads and writes, and the bound
 * on the chunk buffers held.
 */
export const WORKERS = 4;

/**
 * The process-wide task slots, each with its chunk buffer; buffers are dropped when no slot is taken. The extraction
 * that started first has them: a freed slot is handed on a microtask later, so a worker going on with its own
 * extraction takes it back first, and a later extraction gets slots only once the earlier ones have no task left to
 * start. Concurrent extractions then finish one after another instead of all at the end, so the server starts a
 * model's workers while the next model is still being extracted.
 */
export class Slots {
  #free = WORKERS;
  readonly #waiting: Array<{ priority: number; wake: () => void }> = [];
  #buffers: Buffer[] = [];

  async take(priority: number): Promise<void> {
    if (this.#free > 0 && !this.#earlierWaiting(priority)) {
      this.#free--;
      return;
    }
    await new Promise<void>((wake) => {
      let i = this.#waiting.length;
      while (i > 0 && this.#waiting[i - 1]!.priority > priority) i--;
      this.#waiting.splice(i, 0, { priority, wake });
    });
  }

  give(): void {
    this.#free++;
    queueMicrotask(() => this.#handOn());
  }

  /** Whether another extraction waits for a slot. */
  get contended(): boolean {
    return this.#waiting.length > 0;
  }

  #earlierWaiting(priority: number): boolean {
    return (this.#waiting[0]?.priority ?? Number.POSITIVE_INFINITY) < priority;
  }

  #handOn(): void {
    if (this.#free === 0) return;
    const next = this.#waiting.shift();
    if (next) {
      this.#free--;
      next.wake();
    } else if (this.#free === WORKERS) this.#buffers = [];
  }

  buffer(): Buffer {
    return this.#buffers.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
  }

  returnBuffer(b: Buffer): void {
    this.#buffers.push(b);
  }
}

/** The one set of slots of this process. */
export const slots = new Slots();
