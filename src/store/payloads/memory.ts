/** Payloads held in memory: a body captured as its handler writes it, readable while it grows. */
import { OdbError } from '../../core/errors.js';
import type { PayloadSource } from './source.js';

/** Size of the blocks small writes are copied into. */
export const defaultBlockBytes = 64 * 1024;

/** Blocks dropped from the front before the block list is compacted (amortised O(1) per block). */
const compactAfterBlocks = 1024;

/**
 * A payload held in memory, appended to by its producer while readers may already stream it.
 * With an expected size the producer must write exactly that many bytes; without one the payload
 * is open and its size is known only at `finish()`. The producer is paused (see `needsDrain`) once
 * more than `highWaterBytes` are held unread, so an open payload behaves like a bounded pipe.
 *
 * Bytes live in blocks, oldest first: small writes are copied into the current block of
 * `blockBytes` (so a body written one byte at a time costs one block per 64 KiB, not one object
 * per write), and a large appended buffer becomes a block of its own. Memory held is therefore
 * the unread bytes plus at most the partly read first block and the unfilled rest of the last one,
 * whatever the write pattern; finding a read position is a binary search, and dropping consumed
 * blocks advances an index (the list is compacted now and then), never an O(n) splice per read.
 */
export class MemoryPayload implements PayloadSource {
  readonly yieldsViews = true;
  readonly #expectedSize: number | undefined;
  readonly #highWaterBytes: number;
  readonly #blockBytes: number;
  /** Blocks; live ones are at [#head, length). A block ends where the next starts (last: #written). */
  #blocks: (Buffer | undefined)[] = [];
  /** Absolute offset of each block's first byte. */
  #starts: number[] = [];
  #head = 0;
  /** The last block while later writes may still fill it (a copy block), and its bytes used. */
  #tail: Buffer | undefined;
  #tailUsed = 0;
  /** Capacity of the live blocks: the memory this payload holds. */
  #heldBytes = 0;
  #written = 0;
  /** Everything before this offset was taken by the (single) consumer: see discardBefore. */
  #consumed = 0;
  #finished = false;
  #error: OdbError | undefined;
  #abandoned = false;
  #wakeReaders: (() => void)[] = [];
  #wakeScheduled = false;
  #drainWaiters: (() => void)[] = [];
  #abandonListeners: (() => void)[] = [];

  constructor(
    options: { expectedSize?: number; highWaterBytes?: number; blockBytes?: number } = {},
  ) {
    this.#expectedSize = options.expectedSize;
    this.#highWaterBytes = options.highWaterBytes ?? Number.POSITIVE_INFINITY;
    this.#blockBytes = Math.max(1, options.blockBytes ?? defaultBlockBytes);
  }

  get size(): number | undefined {
    return this.#finished ? this.#written : this.#expectedSize;
  }

  /** Bytes written so far. */
  get written(): number {
    return this.#written;
  }

  /** Bytes written and not yet taken by the consumer: what the window of an open payload counts. */
  get unreadBytes(): number {
    return this.#written - this.#consumed;
  }

  /** Memory the payload's blocks hold, in bytes (capacity, including unfilled block space). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** True when the producer should wait for {@link onDrain} before appending more. */
  get needsDrain(): boolean {
    return !this.#abandoned && this.unreadBytes > this.#highWaterBytes;
  }

  /** True once the store dropped this payload; further appends are discarded. */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /**
   * Appends `chunk`, which the payload may keep by reference (a chunk of at least a block is kept
   * as it is; smaller ones are copied): the caller must not modify it afterwards. Use
   * {@link write} for bytes the caller may reuse.
   */
  append(chunk: Buffer): void {
    if (!this.#accepts(chunk.length)) return;
    if (chunk.length < this.#blockBytes) {
      this.#copyIn(chunk);
    } else {
      this.#tail = undefined;
      this.#pushBlock(chunk);
      this.#written += chunk.length;
    }
    this.#wake();
  }

  /** Appends a copy of `chunk` (a string in `encoding`): the caller may reuse its buffer at once. */
  write(chunk: Uint8Array | string, encoding?: BufferEncoding): void {
    if (typeof chunk !== 'string') {
      if (!this.#accepts(chunk.byteLength)) return;
      this.#copyIn(chunk);
    } else {
      const length = Buffer.byteLength(chunk, encoding);
      if (!this.#accepts(length)) return;
      if (this.#tail && this.#tail.length - this.#tailUsed >= length) {
        this.#tail.write(chunk, this.#tailUsed, length, encoding);
        this.#tailUsed += length;
        this.#written += length;
      } else {
        this.#copyIn(Buffer.from(chunk, encoding));
      }
    }
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
    this.#tail = undefined;
    this.#wake();
  }

  /** Marks the payload failed: readers get ODB_ERR_PAYLOAD_FAILED instead of more bytes. */
  fail(reason: string): void {
    if (this.#error || this.#finished) return;
    this.#error = new OdbError('ODB_ERR_PAYLOAD_FAILED', reason);
    this.#wake();
    this.#drain();
  }

  /** Calls `listener` when the store drops the payload (see {@link abandon}). */
  whenAbandoned(listener: () => void): void {
    if (this.#abandoned) queueMicrotask(listener);
    else this.#abandonListeners.push(listener);
  }

  /** The store dropped the payload (released or expired): keep nothing, fail waiting readers. */
  abandon(): void {
    if (this.#abandoned) return;
    this.#abandoned = true;
    this.#blocks = [];
    this.#starts = [];
    this.#head = 0;
    this.#tail = undefined;
    this.#heldBytes = 0;
    this.#wake();
    this.#drain();
    const listeners = this.#abandonListeners;
    this.#abandonListeners = [];
    for (const listener of listeners) listener();
  }

  /** Calls `listener` once the producer may append again. */
  onDrain(listener: () => void): void {
    if (!this.needsDrain) queueMicrotask(listener);
    else this.#drainWaiters.push(listener);
  }

  /** The single consumer took every byte before `offset`: blocks wholly before it are freed. */
  discardBefore(offset: number): void {
    if (offset <= this.#consumed || this.#abandoned) return;
    const wasFull = this.needsDrain;
    this.#consumed = Math.min(offset, this.#written);
    const last = this.#blocks.length - 1;
    while (this.#head < last && this.#starts[this.#head + 1]! <= this.#consumed) {
      this.#heldBytes -= this.#blocks[this.#head]!.length;
      this.#blocks[this.#head] = undefined;
      this.#head++;
    }
    if (this.#head >= compactAfterBlocks && this.#head * 2 >= this.#blocks.length) {
      this.#blocks = this.#blocks.slice(this.#head);
      this.#starts = this.#starts.slice(this.#head);
      this.#head = 0;
    }
    if (wasFull && !this.needsDrain) this.#drain();
  }

  async *read(start: number, end: number | undefined): AsyncIterable<Buffer> {
    let pos = start;
    let index = -1;
    for (;;) {
      if (this.#error) throw this.#error;
      const limit = end ?? (this.#finished ? this.#written : Number.POSITIVE_INFINITY);
      if (pos >= limit) return;
      if (this.#abandoned)
        throw new OdbError('ODB_ERR_EXPIRED', 'payload dropped while being read');
      if (pos < this.#consumed) {
        throw new OdbError('ODB_ERR_OUT_OF_RANGE', `bytes before ${this.#consumed} were consumed`);
      }
      if (pos < this.#written) {
        // The block found last time, unless compaction moved it; else a binary search.
        if (!this.#blockHolds(index, pos)) index = this.#blockAt(pos);
        const block = this.#blocks[index]!;
        const blockStart = this.#starts[index]!;
        const to = Math.min(this.#blockEnd(index), limit) - blockStart;
        const from = pos - blockStart;
        pos += to - from;
        yield from === 0 && to === block.length ? block : block.subarray(from, to);
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

  /** False (and nothing kept) when the payload cannot take `length` more bytes. */
  #accepts(length: number): boolean {
    if (this.#abandoned || this.#error) return false;
    if (this.#finished) throw new OdbError('ODB_ERR_PAYLOAD_FAILED', 'append after finish');
    if (length === 0) return false;
    if (this.#expectedSize !== undefined && this.#written + length > this.#expectedSize) {
      this.fail(`producer wrote more than the announced ${this.#expectedSize} bytes`);
      return false;
    }
    return true;
  }

  /** Copies `bytes` into the last block's free space, then into new blocks as needed. */
  #copyIn(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      if (!this.#tail || this.#tailUsed === this.#tail.length) {
        const wanted = Math.max(this.#blockBytes, bytes.length - at);
        // A payload of known size never needs a block beyond its last byte.
        const capacity =
          this.#expectedSize === undefined
            ? wanted
            : Math.min(wanted, this.#expectedSize - this.#written);
        this.#tail = Buffer.allocUnsafe(capacity);
        this.#tailUsed = 0;
        this.#pushBlock(this.#tail);
      }
      const length = Math.min(this.#tail.length - this.#tailUsed, bytes.length - at);
      this.#tail.set(
        at === 0 && length === bytes.length ? bytes : bytes.subarray(at, at + length),
        this.#tailUsed,
      );
      at += length;
      this.#tailUsed += length;
      this.#written += length;
    }
  }

  #pushBlock(block: Buffer): void {
    this.#blocks.push(block);
    this.#starts.push(this.#written);
    this.#heldBytes += block.length;
  }

  #blockEnd(index: number): number {
    return index === this.#blocks.length - 1 ? this.#written : this.#starts[index + 1]!;
  }

  #blockHolds(index: number, pos: number): boolean {
    return (
      index >= this.#head &&
      index < this.#blocks.length &&
      this.#starts[index]! <= pos &&
      pos < this.#blockEnd(index)
    );
  }

  /** Index of the live block holding `pos` (which must be written and not discarded). */
  #blockAt(pos: number): number {
    let low = this.#head;
    let high = this.#blocks.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (this.#starts[mid]! <= pos) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  /** Wakes waiting readers once per turn of the event loop, with whatever was written by then. */
  #wake(): void {
    if (this.#wakeScheduled || this.#wakeReaders.length === 0) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      const waiting = this.#wakeReaders;
      this.#wakeReaders = [];
      for (const resolve of waiting) resolve();
    });
  }

  #drain(): void {
    const waiting = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const listener of waiting) listener();
  }
}
