import type { OwnPayloadAllocator, OwnPayloadMemory } from '../memory/own-payload.js';

/** The longest a gathered byte waits, in units of the wait after the last write. */
export const maxWaitFactor = 2;

/** What a gatherer gathered: memory the caller now owns, holding `length` bytes. */
export interface GatheredPayload {
  readonly memory: OwnPayloadMemory;
  readonly length: number;
}

/**
 * Gathers a connection's consecutive large writes into one payload. Without it, a file server
 * that writes a 1 MiB body in 64 KiB chunks makes 16 payloads: 16 descriptors to sign and
 * verify, 16 lazy regions and references at every holder, 16 fetches at the tier that reads the
 * body. Gathered, the body is one of each.
 *
 * The bytes are copied into own-payload memory reserved up to the cap (pages committed as they
 * are written), so the application's write completes at once: the bytes are ours (a payload whose
 * size the writer announced is allocated at that size instead). The connection decides when what
 * is gathered goes out (see OdbConnection); the gatherer only bounds how long gathered bytes wait
 * at most (see {@link PayloadGatherer.wait}).
 */
export class PayloadGatherer {
  readonly #maxBytes: number;
  readonly #waitMs: number;
  readonly #onWaited: () => void;
  readonly #allocator: OwnPayloadAllocator;
  #memory: OwnPayloadMemory | undefined;
  #used = 0;
  #timer: NodeJS.Timeout | undefined;
  /** When the wait must end at the latest (ms since the epoch); 0 when it has not started. */
  #deadline = 0;

  /**
   * `maxBytes`: the largest payload; `onWaited`: called when a wait (see {@link wait}) ends
   * while bytes are still gathered.
   */
  constructor(
    allocator: OwnPayloadAllocator,
    maxBytes: number,
    waitMs: number,
    onWaited: () => void,
  ) {
    this.#allocator = allocator;
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
    if (!this.#memory) {
      if (chunk.length > this.#maxBytes) return false;
      const announced =
        expected !== undefined && expected >= chunk.length && expected <= this.#maxBytes;
      this.#memory = announced
        ? this.#allocator.allocate(expected)
        : this.#allocator.allocate(this.#maxBytes, true);
    }
    if (used > this.#memory.capacity) return false;
    this.#memory.write(this.#used, chunk);
    this.#used = used;
    return true;
  }

  /**
   * (Re)starts the wait after a write that left bytes gathered: they go out `waitMs` after the
   * last such write, unless something sends them sooner, and at most `waitMs` ×
   * {@link maxWaitFactor} after the first of them was gathered. So a writer that keeps writing
   * (a file server reading from a busy disk or a loaded machine) sends one payload, while a
   * paced writer (a rate-limited download) is received at its own pace, late by that bound at
   * most, instead of in one burst at its end.
   */
  wait(): void {
    if (this.#used === 0) return;
    const now = Date.now();
    if (this.#deadline === 0) this.#deadline = now + this.#waitMs * maxWaitFactor;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      this.#waited,
      Math.max(0, Math.min(this.#waitMs, this.#deadline - now)),
    );
  }

  readonly #waited = (): void => {
    this.#timer = undefined;
    this.#deadline = 0;
    this.#onWaited();
  };

  /** What was gathered, now the caller's; undefined when nothing was. */
  take(): GatheredPayload | undefined {
    const memory = this.#memory;
    const length = this.#used;
    this.#reset();
    return memory && { memory, length };
  }

  /** Gives back what was gathered (its connection is gone). */
  discard(): void {
    this.#memory?.discard();
    this.#reset();
  }

  #reset(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deadline = 0;
    this.#memory = undefined;
    this.#used = 0;
  }
}
