/**
 * Memory for the payloads this process sends as descriptors (its own payloads), at both ends:
 * the application thread writes a payload's bytes and hands it off; the agent's store serves
 * fetches from it and gives it back when it drops the payload.
 *
 * With the addon the memory is native (OwnMemoryBinding): it goes back the moment the store drops
 * the payload, so an owner's memory follows what its store holds. Without the addon a
 * SharedArrayBuffer stands in, whose memory goes only once both threads have collected their
 * wrappers: its drops must be paced with collections (see CollectionPacer).
 */
import { OdbError } from '../../core/errors.js';
import type { OwnMemoryBinding } from '../../native/binding.js';
import { MemoryPayload } from '../../store/payloads/memory.js';
import type { PayloadSource } from '../../store/payloads/source.js';

/** What the agent is given to serve a payload's first `length` bytes. */
export type OwnPayloadHandle =
  | { readonly kind: 'native'; readonly id: number; readonly length: number }
  | { readonly kind: 'shared'; readonly bytes: SharedArrayBuffer; readonly length: number };

/** A payload's memory on the application thread. */
export interface OwnPayloadMemory {
  /** The most bytes it may hold. */
  readonly capacity: number;
  /** Copies `bytes` in at `offset`; writes to growable memory must follow each other. */
  write(offset: number, bytes: Uint8Array): void;
  /** Hands the first `length` bytes to the agent; nothing may be written afterwards. */
  handOff(length: number): OwnPayloadHandle;
  /**
   * `[offset, offset + length)` after hand-off, when the payload came back to this process: a
   * copy, or a view of memory nothing frees under it; undefined once the store freed it.
   */
  bytes(offset: number, length: number): Buffer | undefined;
  /**
   * The first `length` bytes as a Buffer the caller owns, for a payload that travels as real
   * bytes after all (the store's budget is spent); the memory is given back.
   */
  reclaim(length: number): Buffer;
  /** Gives back memory that was never handed off (its connection is gone). */
  discard(): void;
}

/** How long after its last allocation a process gives the addon's pooled mappings back. */
const poolTrimMs = 2000;

/** Where the application thread gets own-payload memory. */
export class OwnPayloadAllocator {
  readonly #binding: OwnMemoryBinding | undefined;
  #trim: NodeJS.Timeout | undefined;

  constructor(binding: OwnMemoryBinding | undefined) {
    this.#binding = binding;
  }

  /** The pool keeps freed payloads' pages for the next ones; a process that fell quiet trims it. */
  #trimLater(binding: OwnMemoryBinding): void {
    if (this.#trim) {
      this.#trim.refresh();
      return;
    }
    this.#trim = setTimeout(() => {
      this.#trim = undefined;
      binding.ownTrim();
    }, poolTrimMs);
    this.#trim.unref();
  }

  /** True when a dropped payload's memory goes only with garbage collection (no addon). */
  get freedByCollection(): boolean {
    return !this.#binding;
  }

  /**
   * Memory for up to `capacity` bytes. `growable`: the final size is not known yet; native memory
   * reserves the capacity either way and commits pages as they are written.
   */
  allocate(capacity: number, growable = false): OwnPayloadMemory {
    if (!this.#binding) return new SharedPayloadMemory(capacity, growable);
    this.#trimLater(this.#binding);
    return new NativePayloadMemory(this.#binding, capacity);
  }
}

class NativePayloadMemory implements OwnPayloadMemory {
  readonly capacity: number;
  readonly #binding: OwnMemoryBinding;
  readonly #id: number;

  constructor(binding: OwnMemoryBinding, capacity: number) {
    this.#binding = binding;
    this.capacity = capacity;
    this.#id = binding.ownAllocate(capacity);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#binding.ownWrite(this.#id, offset, bytes);
  }

  handOff(length: number): OwnPayloadHandle {
    return { kind: 'native', id: this.#id, length };
  }

  bytes(offset: number, length: number): Buffer | undefined {
    return this.#binding.ownCopy(this.#id, offset, length) ?? undefined;
  }

  reclaim(length: number): Buffer {
    const bytes = this.#binding.ownCopy(this.#id, 0, length);
    this.discard();
    if (!bytes) throw new OdbError('ODB_ERR_PAYLOAD_FAILED', 'own payload memory freed early');
    return bytes;
  }

  discard(): void {
    this.#binding.ownFree(this.#id);
  }
}

class SharedPayloadMemory implements OwnPayloadMemory {
  readonly capacity: number;
  #shared: SharedArrayBuffer;

  constructor(capacity: number, growable: boolean) {
    this.capacity = capacity;
    this.#shared = growable
      ? new SharedArrayBuffer(0, { maxByteLength: capacity })
      : new SharedArrayBuffer(capacity);
  }

  write(offset: number, bytes: Uint8Array): void {
    if (this.#shared.growable && offset + bytes.length > this.#shared.byteLength)
      this.#shared.grow(offset + bytes.length);
    new Uint8Array(this.#shared, offset, bytes.length).set(bytes);
  }

  handOff(length: number): OwnPayloadHandle {
    // Fewer bytes than allocated (a miscounted body): a copy of the right length.
    const bytes = length < this.#shared.byteLength ? this.#shared.slice(0, length) : this.#shared;
    return { kind: 'shared', bytes, length };
  }

  bytes(offset: number, length: number): Buffer {
    return Buffer.from(this.#shared, offset, length);
  }

  reclaim(length: number): Buffer {
    return Buffer.from(this.#shared, 0, length);
  }

  discard(): void {
    this.#shared = new SharedArrayBuffer(0);
  }
}

/**
 * The agent's store source for a handed-off payload. `binding`: the addon, which a native handle
 * needs (both threads load the same one).
 */
export function ownPayloadSource(
  handle: OwnPayloadHandle,
  binding: OwnMemoryBinding | undefined,
): PayloadSource {
  if (handle.kind === 'shared') {
    const payload = new MemoryPayload({ expectedSize: handle.length });
    payload.append(Buffer.from(handle.bytes));
    payload.finish();
    return payload;
  }
  if (!binding) throw new OdbError('ODB_ERR_PAYLOAD_FAILED', 'native payload without the addon');
  return new NativePayload(binding, handle.id, handle.length);
}

/** True when a dropped source's memory goes only with garbage collection. */
export function freedByCollection(source: PayloadSource): boolean {
  return !(source instanceof NativePayload);
}

/**
 * A payload in native memory, complete when registered. Reads yield views (no copy), which the
 * reader must be done with, kernel writes included, before its read ends: the store frees the
 * memory (`abandon`) only when the payload was dropped and no read is under way. The views are
 * released then, not when the agent happens to collect them, so that the memory can go back to
 * the addon's pool (fresh pages cost a fault each).
 */
class NativePayload implements PayloadSource {
  readonly yieldsViews = true;
  readonly size: number;
  readonly #binding: OwnMemoryBinding;
  readonly #id: number;
  readonly #views = new Set<Buffer>();

  constructor(binding: OwnMemoryBinding, id: number, size: number) {
    this.#binding = binding;
    this.#id = id;
    this.size = size;
  }

  async *read(start: number, end: number | undefined): AsyncIterable<Buffer> {
    const to = Math.min(end ?? this.size, this.size);
    if (start >= to) return;
    const view = this.#binding.ownView(this.#id, start, to - start); // null once freed
    if (!view) throw new OdbError('ODB_ERR_EXPIRED', 'payload dropped while being read');
    this.#views.add(view);
    yield view;
  }

  abandon(): void {
    for (const view of this.#views) this.#binding.ownUnview(this.#id, view);
    this.#views.clear();
    this.#binding.ownFree(this.#id); // idempotent
  }
}
