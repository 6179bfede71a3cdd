/**
 * A buffer store whose entries are counted (stream mode): a payload is held while any process
 * may still resolve a descriptor to it, one reference per forwarded descriptor, and goes with its
 * last reference (docs/stream-mode.md, "How it works"). Payloads are signed on the application's
 * thread and adopted here, so fetches and references may reach the store before the payload.
 */
import { ReferenceLedger, referenceToken } from './references.js';
import { BufferStore, type StoreEntry } from './store.js';
import type { Descriptor } from '../protocol/descriptor.js';
import type { PayloadSource } from './payloads/source.js';

/** An entry of a {@link CountedStore}: the references that keep it. */
interface CountedEntry extends StoreEntry {
  readonly refs: ReferenceLedger;
}

export class CountedStore extends BufferStore {
  readonly #waiting = new Map<string, (() => void)[]>();
  /** References to payloads not registered yet (they reach the store before the payload). */
  readonly #unregistered = new Map<
    string,
    { readonly refs: ReferenceLedger; readonly expiresAt: number }
  >();

  /**
   * Registers `source` under a descriptor signed elsewhere in this process (stream mode signs on
   * the application's thread), as a counted entry holding the one reference that descriptor
   * grants. False when full.
   */
  adopt(descriptor: Descriptor, source: PayloadSource, charge: number): boolean {
    if (!this.hasRoomFor(charge)) {
      this.stats.rejectedFull++;
      return false;
    }
    const id = descriptor.payloadId.toString('hex');
    const refs = this.#unregistered.get(id)?.refs ?? new ReferenceLedger();
    this.#unregistered.delete(id);
    refs.retain(referenceToken(descriptor.bytes));
    const entry: CountedEntry = {
      id,
      source,
      charge,
      expiresAt: descriptor.expiresAt,
      open: descriptor.open,
      readers: 0,
      dropped: false,
      refs,
    };
    this.add(entry);
    // Its only holder may have been done before the payload got here.
    if (refs.count === 0) this.drop(entry, 'released');
    return true;
  }

  /** Adds the reference `token` grants to a counted entry and extends its life by the TTL. */
  retainReference(id: string, token: string): boolean {
    return this.#reference(id, token, 'retain');
  }

  /** Gives back the reference `token` granted; the entry goes with its last reference. */
  releaseReference(id: string, token: string): boolean {
    return this.#reference(id, token, 'release');
  }

  /**
   * Resolves true once an entry with this id is held (registrations and fetches reach a store by
   * different paths), false after `timeoutMs`.
   */
  whenRegistered(id: string, timeoutMs: number): Promise<boolean> {
    if (this.has(id)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const list = this.#waiting.get(id);
        const i = list?.indexOf(wake) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
        if (list?.length === 0) this.#waiting.delete(id);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.#waiting.set(id, [...(this.#waiting.get(id) ?? []), wake]);
    });
  }

  override sweep(): void {
    super.sweep();
    const now = this.now();
    for (const [id, pending] of this.#unregistered)
      if (now > pending.expiresAt) this.#unregistered.delete(id);
  }

  protected override add(entry: StoreEntry): void {
    super.add(entry);
    const waiting = this.#waiting.get(entry.id);
    if (waiting) {
      this.#waiting.delete(entry.id);
      for (const wake of waiting) wake();
    }
  }

  protected override isCounted(entry: StoreEntry): boolean {
    return 'refs' in entry;
  }

  /**
   * Applies a retain or release to a counted entry. For a payload not registered yet, it waits
   * for the payload (up to the TTL), and the answer is false.
   */
  #reference(id: string, token: string, verb: 'retain' | 'release'): boolean {
    const entry = this.entries.get(id);
    if (!entry || !this.isCounted(entry)) {
      this.#pendingReferences(id)?.[verb](token);
      return false;
    }
    const { refs } = entry as CountedEntry;
    refs[verb](token);
    if (verb === 'retain') entry.expiresAt = Math.max(entry.expiresAt, this.now() + this.ttlMs);
    else if (refs.count === 0) this.drop(entry, 'released');
    return true;
  }

  /** The ledger of a payload not registered yet; undefined once too many are pending. */
  #pendingReferences(id: string): ReferenceLedger | undefined {
    const pending = this.#unregistered.get(id);
    if (pending) return pending.refs;
    if (this.#unregistered.size >= this.maxEntries) return undefined;
    const refs = new ReferenceLedger();
    this.#unregistered.set(id, { refs, expiresAt: this.now() + this.ttlMs });
    return refs;
  }
}
