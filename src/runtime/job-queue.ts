import { MarError } from '../errors.js';
import type { InferenceRequest, PredictionResult } from './protocol.js';

/**
 * The per-model bounded job queue (MMS: one LinkedBlockingDeque of `job_queue_size` per model).
 * It is passive: it only stores jobs; the BatchAggregator decides when workers take them. Kept apart from
 * the pool (as piscina does) so both can be tested on their own.
 */
export class JobQueue<T> {
  readonly capacity: number;
  // Ring buffer: O(1) offer/poll/unshift without Array#shift's copying.
  #buf: Array<T | undefined>;
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new MarError('USAGE', `job queue size must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#buf = new Array<T | undefined>(Math.min(capacity, 1024));
  }

  get length(): number {
    return this.#size;
  }

  get isFull(): boolean {
    return this.#size >= this.capacity;
  }

  /** Adds at the tail; false when the queue already holds `capacity` jobs (the caller answers 503). */
  offer(item: T): boolean {
    if (this.#size >= this.capacity) return false;
    if (this.#size === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#size) % this.#buf.length] = item;
    this.#size++;
    return true;
  }

  /**
   * Puts jobs back at the head, keeping their order (jobs a worker pulled but never sent). They were accepted
   * already, so this may exceed the capacity.
   */
  unshiftAll(items: readonly T[]): void {
    for (let i = items.length - 1; i >= 0; i--) {
      if (this.#size === this.#buf.length) this.#grow();
      this.#head = (this.#head - 1 + this.#buf.length) % this.#buf.length;
      this.#buf[this.#head] = items[i];
      this.#size++;
    }
  }

  /** Takes the head job, or undefined when empty. */
  poll(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#size--;
    return item;
  }

  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#buf[this.#head];
  }

  /** Removes one job wherever it is (a client gave up); false if it is not queued. O(n), only on aborts. */
  remove(item: T): boolean {
    const n = this.#buf.length;
    for (let i = 0; i < this.#size; i++) {
      if (this.#buf[(this.#head + i) % n] !== item) continue;
      for (let j = i; j < this.#size - 1; j++) {
        this.#buf[(this.#head + j) % n] = this.#buf[(this.#head + j + 1) % n];
      }
      this.#buf[(this.#head + this.#size - 1) % n] = undefined;
      this.#size--;
      return true;
    }
    return false;
  }

  /** Empties the queue and returns its jobs in order. */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.poll(); item !== undefined; item = this.poll()) out.push(item);
    return out;
  }

  #grow(): void {
    const old = this.#buf;
    const next = new Array<T | undefined>(Math.max(4, old.length * 2));
    for (let i = 0; i < this.#size; i++) next[i] = old[(this.#head + i) % old.length];
    this.#buf = next;
    this.#head = 0;
  }
}

const enum JobState {
  Queued,
  Sent,
  Done,
}

/**
 * One inference request waiting for its answer. A class rather than closures so the hot path allocates
 * one object per request; it is its own abort listener (`handleEvent`).
 */
export class Job {
  readonly request: InferenceRequest;
  readonly signal: AbortSignal | undefined;
  #resolve: (r: PredictionResult) => void;
  #reject: (e: MarError) => void;
  #state = JobState.Queued;
  #watching = false;
  /** Called on abort while the job is not yet sent, to take it out of the queue or a forming batch. */
  onAbort: ((job: Job) => void) | null = null;
  /** performance.now() when a worker took the job's batch (0 while queued): the end of its queue time. */
  sentAt = 0;

  constructor(request: InferenceRequest, resolve: (r: PredictionResult) => void, reject: (e: MarError) => void, signal?: AbortSignal) {
    this.request = request;
    this.#resolve = resolve;
    this.#reject = reject;
    this.signal = signal;
  }

  /**
   * Starts listening for the signal's abort. Called only for jobs that have to wait: a job sent at once to an
   * idle worker never pays for an EventTarget listener (measurably slow on the hot path).
   */
  watchAbort(): void {
    if (this.signal === undefined || this.#watching || this.#state !== JobState.Queued) return;
    this.#watching = true;
    this.signal.addEventListener('abort', this);
  }

  get isDone(): boolean {
    return this.#state === JobState.Done;
  }

  get isSent(): boolean {
    return this.#state === JobState.Sent;
  }

  /** The batch holding this job was taken by a worker at `at` (performance.now()): it can no longer be withdrawn. */
  markSent(at: number = performance.now()): void {
    if (this.#state !== JobState.Queued) return;
    this.#state = JobState.Sent;
    this.sentAt = at;
  }

  resolve(result: PredictionResult): void {
    if (this.#state === JobState.Done) return;
    this.#finish();
    this.#resolve(result);
  }

  reject(err: MarError): void {
    if (this.#state === JobState.Done) return;
    this.#finish();
    this.#reject(err);
  }

  /** AbortSignal listener. A queued job leaves the queue; any job is answered at once with REQUEST_CANCELLED. */
  handleEvent(): void {
    this.cancel(this.signal?.reason);
  }

  /** The client went away: as an abort of the signal (without needing one, which is cheaper per request). */
  cancel(reason?: unknown): void {
    if (this.#state === JobState.Done) return;
    if (this.#state === JobState.Queued) this.onAbort?.(this);
    this.reject(
      new MarError('REQUEST_CANCELLED', `Request ${this.request.requestId} was cancelled by the client.`, {
        cause: reason,
      }),
    );
  }

  #finish(): void {
    this.#state = JobState.Done;
    if (this.#watching) this.signal!.removeEventListener('abort', this);
  }
}
