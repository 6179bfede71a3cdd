/**
 * Coalescing of one connection's large writes into shared outgoing payloads.
 *
 * A program streams a file or a body in writes of its own choosing (64 KiB for fs streams). Each
 * write still becomes its own V frame, so every tier sees the same buffers it would without ODB,
 * but consecutive writes become consecutive slices of one payload: a receiver that needs their
 * bytes fetches a run of slices in one request (agent-worker.ts), and the owner keeps one store
 * entry instead of one per write.
 *
 * An open payload is closed (this process's reference to it given back; its slices keep it alive
 * while their holders need them) when the next write does not fit, when the connection has been
 * quiet for {@link idleCloseMs}, or when the connection closes.
 */
import type { Descriptor } from '../protocol/descriptor.js';
import type { OpenPayload, StreamRuntime } from './runtime.js';

/** A quiet connection gives its open payload back after this long. */
export const idleCloseMs = 50;

export class WriteCoalescer {
  readonly #runtime: StreamRuntime;
  readonly #capacity: number;
  #open: OpenPayload | undefined;
  #idle: NodeJS.Timeout | undefined;

  /** `capacity`: bytes of each shared payload (config `coalesceBytes`, > 0). */
  constructor(runtime: StreamRuntime, capacity: number) {
    this.#runtime = runtime;
    this.#capacity = capacity;
  }

  /**
   * The descriptor to send for `bytes` (copied into this process's store), or undefined when the
   * store's budget is spent (the caller sends them real).
   */
  descriptorFor(bytes: Buffer): Descriptor | undefined {
    const runtime = this.#runtime;
    if (bytes.length * 2 > this.#capacity) return runtime.registerOwn(bytes);
    let slice = this.#open && runtime.appendOwn(this.#open, bytes);
    if (!slice) {
      this.close();
      this.#open = runtime.openOwn(this.#capacity);
      if (!this.#open) return runtime.registerOwn(bytes);
      slice = runtime.appendOwn(this.#open, bytes);
      if (!slice) return runtime.registerOwn(bytes);
    }
    if (this.#idle) this.#idle.refresh();
    else {
      this.#idle = setTimeout(() => this.close(), idleCloseMs);
      this.#idle.unref();
    }
    return slice;
  }

  /** Gives the open payload back, if any. */
  close(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = undefined;
    if (this.#open) this.#runtime.closeOwn(this.#open);
    this.#open = undefined;
  }
}
