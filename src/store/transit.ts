/** The bytes a fetch has read into memory and not yet flushed, charged to the store's budget. */
import type { BufferStore } from './store.js';

/**
 * The memory one fetch holds in transit: bytes a source read into memory it allocated for the
 * fetch (a file's read buffers), counted against the store's budget from allocation until the
 * socket flushed them. Views of memory a payload already holds (memory payloads, synthetic
 * tables) allocate nothing and are not counted twice.
 */
export class TransitAccount {
  readonly #store: BufferStore;
  #outstanding = 0;
  #closed = false;

  constructor(store: BufferStore) {
    this.#store = store;
  }

  /** Allocates a read buffer for up to `want` bytes; smaller when the store's budget is spent. */
  readonly allocate = (want: number): Buffer => {
    const granted = this.#store.reserveTransit(want);
    this.#outstanding += granted;
    return Buffer.allocUnsafe(granted);
  };

  /** `bytes` were flushed to the socket: their memory is no longer the fetch's. */
  readonly flushed = (bytes: number): void => {
    if (this.#closed) return;
    const given = Math.min(bytes, this.#outstanding);
    this.#outstanding -= given;
    this.#store.releaseTransit(given);
  };

  /**
   * The fetch ended (its response finished or closed): gives back what is left, including
   * pieces a destroyed socket dropped without flushing. Later flushes are ignored.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#store.releaseTransit(this.#outstanding);
    this.#outstanding = 0;
  }
}
