/**
 * The writes a captured handler made before the capture decided how to send the body: their bytes
 * in one growing buffer and their lengths, so that a body written in tiny pieces costs a few bytes
 * per write rather than an object per write, and each write can still be replayed unchanged (same
 * boundaries, hence the same chunked framing on the wire) when the body turns out small.
 */

type Callback = (err?: Error | null) => void;

/** Where the held bytes go: a real response (write by write) or a payload (all at once). */
export interface HeldWriteTarget {
  write(chunk: Buffer, callback?: Callback): unknown;
}

const initialBytes = 16 * 1024;
const initialWrites = 64;

export class HeldWrites {
  #bytes = Buffer.allocUnsafe(0);
  #byteCount = 0;
  #lengths = new Uint32Array(0);
  #count = 0;
  /** Callbacks by write index: only writes that had one. */
  #callbacks = new Map<number, Callback>();

  /** Bytes held. */
  get byteLength(): number {
    return this.#byteCount;
  }

  /** Writes held. */
  get count(): number {
    return this.#count;
  }

  /** Holds a copy of one write (a string is held as its bytes in `encoding`). */
  push(
    chunk: string | Uint8Array,
    encoding: BufferEncoding | undefined,
    callback?: Callback,
  ): void {
    const length =
      typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
    this.#reserve(length);
    if (typeof chunk === 'string') this.#bytes.write(chunk, this.#byteCount, length, encoding);
    else this.#bytes.set(chunk, this.#byteCount);
    this.#byteCount += length;
    if (callback) this.#callbacks.set(this.#count, callback);
    this.#lengths[this.#count++] = length;
  }

  /** Replays every write, in order and with its own boundaries, into `target`; then forgets them. */
  replayInto(target: HeldWriteTarget): void {
    let at = 0;
    for (let i = 0; i < this.#count; i++) {
      const length = this.#lengths[i]!;
      target.write(this.#bytes.subarray(at, at + length), this.#callbacks.get(i));
      at += length;
    }
    this.#clear();
  }

  /** All held bytes as one view, and the callbacks in order; forgets them (the view stays valid). */
  take(): { bytes: Buffer; callbacks: Callback[] } {
    const taken = {
      bytes: this.#bytes.subarray(0, this.#byteCount),
      callbacks: [...this.#callbacks.values()],
    };
    this.#clear();
    return taken;
  }

  #reserve(length: number): void {
    if (this.#byteCount + length > this.#bytes.length) {
      const grown = Buffer.allocUnsafe(
        Math.max(initialBytes, this.#bytes.length * 2, this.#byteCount + length),
      );
      this.#bytes.copy(grown, 0, 0, this.#byteCount);
      this.#bytes = grown;
    }
    if (this.#count === this.#lengths.length) {
      const grown = new Uint32Array(Math.max(initialWrites, this.#lengths.length * 2));
      grown.set(this.#lengths);
      this.#lengths = grown;
    }
  }

  #clear(): void {
    this.#bytes = Buffer.allocUnsafe(0);
    this.#byteCount = 0;
    this.#lengths = new Uint32Array(0);
    this.#count = 0;
    this.#callbacks.clear();
  }
}
