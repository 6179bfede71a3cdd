import { OdbError } from '../errors.js';
import type { PayloadSource } from './payload-source.js';

/**
 * A payload held in memory, appended to by its producer while readers may already stream it.
 * With an expected size the producer must write exactly that many bytes; without one the payload
 * is open and its size is known only at `finish()`. The producer is paused (see `needsDrain`) once
 * more than `highWaterBytes` are held unread, so an open payload behaves like a bounded pipe.
 */
export class MemoryPayload implements PayloadSource {
  readonly #expectedSize: number | undefined;
  readonly #highWaterBytes: number;
  #chunks: Buffer[] = [];
  #chunkStarts: number[] = [];
  #discarded = 0; // bytes dropped from the front of #chunks
  #written = 0;
  #finished = false;
  #error: OdbError | undefined;
  #abandoned = false;
  #wakeReaders: (() => void)[] = [];
  #drainWaiters: (() => void)[] = [];

  constructor(options: { expectedSize?: number; highWaterBytes?: number } = {}) {
    this.#expectedSize = options.expectedSize;
    this.#highWaterBytes = options.highWaterBytes ?? Number.POSITIVE_INFINITY;
  }

  get size(): number | undefined {
    return this.#finished ? this.#written : this.#expectedSize;
  }

  /** Bytes written so far. */
  get written(): number {
    return this.#written;
  }

  /** True when the producer should wait for {@link onDrain} before appending more. */
  get needsDrain(): boolean {
    return !this.#abandoned && this.#written - this.#discarded > this.#highWaterBytes;
  }

  /** True once the store dropped this payload; further appends are discarded. */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /** Appends `chunk` (kept by reference: pass a copy if the caller may reuse it). */
  append(chunk: Buffer): void {
    if (this.#abandoned || this.#error) return;
    if (this.#finished) throw new OdbError('ODB_ERR_PAYLOAD_FAILED', 'append after finish');
    if (chunk.length === 0) return;
    if (this.#expectedSize !== undefined && this.#written + chunk.length > this.#expectedSize) {
      this.fail(`producer wrote more than the announced ${this.#expectedSize} bytes`);
      return;
    }
    this.#chunks.push(chunk);
    this.#chunkStarts.push(this.#written);
    this.#written += chunk.length;
    this.#wake();
  }

  /** Declares the end of the payload; a short fixed-size payload fails instead. */
  finish(): void {
    if (this.#finished || this.#error) return;
    if (this.#expectedSize !== undefined && this.#written !== this.#expectedSize) {
      this.fail(`producer ended after ${this.#written} of ${this.#expectedSize} bytes`);
      return;
    }
    this.#finished = true;
    this.#wake();
  }

  /** Marks the payload failed: readers get ODB_ERR_PAYLOAD_FAILED instead of more bytes. */
  fail(reason: string): void {
    if (this.#error || this.#finished) return;
    this.#error = new OdbError('ODB_ERR_PAYLOAD_FAILED', reason);
    this.#wake();
    this.#drain();
  }

  abandon(): void {
    this.#abandoned = true;
    this.#chunks = [];
    this.#chunkStarts = [];
    this.#wake();
    this.#drain();
  }

  /** Calls `listener` once the producer may append again. */
  onDrain(listener: () => void): void {
    if (!this.needsDrain) queueMicrotask(listener);
    else this.#drainWaiters.push(listener);
  }

  discardBefore(offset: number): void {
    let dropped = 0;
    while (dropped < this.#chunks.length) {
      const end = this.#chunkStarts[dropped]! + this.#chunks[dropped]!.length;
      if (end > offset) break;
      this.#discarded = end;
      dropped++;
    }
    if (dropped > 0) {
      this.#chunks.splice(0, dropped);
      this.#chunkStarts.splice(0, dropped);
      if (!this.needsDrain) this.#drain();
    }
  }

  async *read(start: number, end: number | undefined): AsyncIterable<Buffer> {
    let pos = start;
    let index = 0;
    for (;;) {
      if (this.#error) throw this.#error;
      const limit = end ?? (this.#finished ? this.#written : Number.POSITIVE_INFINITY);
      if (pos >= limit) return;
      if (this.#abandoned)
        throw new OdbError('ODB_ERR_EXPIRED', 'payload dropped while being read');
      if (pos < this.#discarded) {
        throw new OdbError('ODB_ERR_OUT_OF_RANGE', `bytes before ${this.#discarded} were consumed`);
      }
      if (pos < this.#written) {
        // Chunks before `index` were yielded already, unless discarding shifted the list.
        if (index >= this.#chunks.length || this.#chunkStarts[index]! > pos) index = 0;
        while (this.#chunkStarts[index]! + this.#chunks[index]!.length <= pos) index++;
        const chunk = this.#chunks[index]!;
        const from = pos - this.#chunkStarts[index]!;
        const to = Math.min(chunk.length, limit - this.#chunkStarts[index]!);
        pos += to - from;
        yield from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
        continue;
      }
      if (this.#finished) {
        throw new OdbError(
          'ODB_ERR_OUT_OF_RANGE',
          `read to ${limit} of a ${this.#written}-byte payload`,
        );
      }
      await new Promise<void>((resolve) => this.#wakeReaders.push(resolve));
    }
  }

  #wake(): void {
    const waiting = this.#wakeReaders;
    this.#wakeReaders = [];
    for (const resolve of waiting) resolve();
  }

  #drain(): void {
    const waiting = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const listener of waiting) listener();
  }
}
