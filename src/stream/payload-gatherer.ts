/**
 * Gathers a connection's consecutive large writes into one payload. Without it, a file server
 * that writes a 1 MiB body in 64 KiB chunks makes 16 payloads: 16 descriptors to sign and
 * verify, 16 lazy regions and references at every holder, 16 fetches at the tier that reads the
 * body. Gathered, the body is one of each.
 *
 * The bytes are copied into one growable SharedArrayBuffer (address space reserved up to the
 * cap, memory committed as it grows), so the application's write completes at once: the bytes
 * are ours (a payload whose size the writer announced is allocated at that size instead). The
 * connection decides when what is gathered goes out (see OdbConnection); the gatherer only
 * bounds how long gathered bytes wait once the writer pauses.
 */
export class PayloadGatherer {
  readonly #maxBytes: number;
  readonly #waitMs: number;
  readonly #onWaited: () => void;
  #shared: SharedArrayBuffer | undefined;
  #used = 0;
  #timer: NodeJS.Timeout | undefined;
  #lastWrite = 0;

  /**
   * `maxBytes`: the largest payload; `onWaited`: called `waitMs` after the last {@link wait} if
   * bytes are still gathered then.
   */
  constructor(maxBytes: number, waitMs: number, onWaited: () => void) {
    this.#maxBytes = maxBytes;
    this.#waitMs = waitMs;
    this.#onWaited = onWaited;
  }

  /** Bytes gathered and not yet taken. */
  get gathered(): number {
    return this.#used;
  }

  /**
   * Copies `chunk` in; false when it does not fit (take what is gathered first). `expected`: the
   * bytes a new payload will hold, when the writer announced them (an HTTP Content-Length): the
   * payload is then allocated at that size instead of grown.
   */
  add(chunk: Uint8Array, expected?: number): boolean {
    const used = this.#used + chunk.length;
    if (!this.#shared) {
      if (chunk.length > this.#maxBytes) return false;
      this.#shared =
        expected !== undefined && expected >= chunk.length && expected <= this.#maxBytes
          ? new SharedArrayBuffer(expected)
          : new SharedArrayBuffer(0, { maxByteLength: this.#maxBytes });
    }
    if (used > this.#shared.maxByteLength) return false;
    if (this.#shared.growable) this.#shared.grow(used);
    new Uint8Array(this.#shared, this.#used, chunk.length).set(chunk);
    this.#used = used;
    return true;
  }

  /**
   * (Re)starts the wait for more bytes after a write that left bytes gathered: they go out
   * `waitMs` after the last such write unless something sends them sooner.
   */
  wait(): void {
    if (this.#used === 0) return;
    this.#lastWrite = Date.now();
    // One timer per payload, pushed back when it fires early, rather than re-armed every write.
    this.#timer ??= setTimeout(this.#waited, this.#waitMs);
  }

  readonly #waited = (): void => {
    const idle = Date.now() - this.#lastWrite;
    if (idle < this.#waitMs) {
      this.#timer = setTimeout(this.#waited, this.#waitMs - idle);
      return;
    }
    this.#timer = undefined;
    this.#onWaited();
  };

  /** What was gathered, as memory the caller now owns; undefined when nothing was. */
  take(): SharedArrayBuffer | undefined {
    const shared = this.#shared;
    const used = this.#used;
    this.discard();
    // Less than announced came (a miscounted body): a copy of the right length.
    return shared && used < shared.byteLength ? shared.slice(0, used) : shared;
  }

  /** Forgets what was gathered (its connection is gone). */
  discard(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#shared = undefined;
    this.#used = 0;
  }
}
