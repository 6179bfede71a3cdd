/**
 * The buffer store: payloads a process offers as descriptors, held against a memory budget and a
 * TTL until their consumer releases them or they expire; what its fetch server (server.ts) reads
 * from. Header mode uses it as is; stream mode's counted entries are in counted-store.ts.
 */
import { randomFillSync } from 'node:crypto';
import { OdbError } from '../core/errors.js';
import type { Keyring } from '../core/keys/keyring.js';
import { payloadIdBytes, signDescriptor, type Descriptor } from '../protocol/descriptor.js';
import type { PayloadSource } from './payloads/source.js';

/** Options of a {@link BufferStore}. */
export interface BufferStoreOptions {
  /** Signs descriptors (with its first key) and verifies them. */
  readonly keyring: Keyring;
  /**
   * Memory the store may hold, in bytes: payloads, and bytes its server has read from sources
   * into memory for fetches but not yet flushed to their sockets. Default 256 MiB.
   */
  readonly budgetBytes?: number;
  /** How long an unreleased payload stays fetchable, in ms. Default 30 000. */
  readonly ttlMs?: number;
  /** Most payloads held at once, whatever their kind. Default 100 000. */
  readonly maxEntries?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
  /** Called when an entry leaves the store (released or expired). */
  readonly onDrop?: (entry: StoreEntry, why: 'released' | 'expired') => void;
}

/** One registered payload. */
export interface StoreEntry {
  readonly id: string;
  readonly source: PayloadSource;
  /** Budget bytes charged for this entry (memory it holds or may hold). */
  readonly charge: number;
  /** True when registered with an unknown length. */
  readonly open: boolean;
  /** Fetches currently streaming this entry; it does not expire under them. */
  readers: number;
  /** Released or expired: no new fetch finds it; the source is abandoned after the last reader. */
  dropped: boolean;
  expiresAt: number;
}

/** Counters a store keeps; exposed as metrics. */
export interface StoreStats {
  entries: number;
  chargedBytes: number;
  registered: number;
  /** Payloads that went real because the budget or entry limit was reached. */
  rejectedFull: number;
  released: number;
  expired: number;
  /** Bytes read from sources for fetches and not yet flushed to their sockets (in the budget). */
  transitBytes: number;
  /** Reads given less memory than they asked for because the budget was spent. */
  transitSqueezed: number;
}

export const defaultBudgetBytes = 256 * 1024 * 1024;
export const defaultTtlMs = 30_000;
/**
 * Smallest read a fetch is given when the budget is spent: fetches go on, in smaller pieces, and
 * the budget is exceeded by at most this much per fetch streaming (so the fetch limits bound it).
 */
export const minTransitChunkBytes = 16 * 1024;

/**
 * RAB, the buffer store of the owning process: keeps payload bytes while descriptors to them may
 * still be resolved. Memory is bounded by a byte budget; when full, `register` refuses (the caller
 * sends the payload real) and live entries are never evicted. An entry leaves when released or
 * when its TTL passes with no fetch streaming it.
 */
export class BufferStore {
  readonly budgetBytes: number;
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly keyring: Keyring;
  readonly stats: StoreStats = {
    entries: 0,
    chargedBytes: 0,
    registered: 0,
    rejectedFull: 0,
    released: 0,
    expired: 0,
    transitBytes: 0,
    transitSqueezed: 0,
  };
  protected readonly now: () => number;
  protected readonly entries = new Map<string, StoreEntry>();
  readonly #onDrop: BufferStoreOptions['onDrop'];
  #endpoint: string | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: BufferStoreOptions) {
    this.keyring = options.keyring;
    this.budgetBytes = options.budgetBytes ?? defaultBudgetBytes;
    this.ttlMs = options.ttlMs ?? defaultTtlMs;
    this.maxEntries = options.maxEntries ?? 100_000;
    this.now = options.now ?? Date.now;
    this.#onDrop = options.onDrop;
  }

  /** The endpoint descriptors name; set once the store's server listens. */
  get endpoint(): string | undefined {
    return this.#endpoint;
  }

  /** Sets the advertised `host:port` and starts expiring entries. */
  advertise(endpoint: string): void {
    this.#endpoint = endpoint;
    if (!this.#sweeper) {
      this.#sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, this.ttlMs / 4)));
      this.#sweeper.unref();
    }
  }

  /**
   * True when `charge` more bytes (and one more entry) fit now. A payload that holds no memory (a
   * file range, a generator) always fits, even while fetches in transit have spent the budget.
   */
  hasRoomFor(charge: number): boolean {
    return this.entries.size < this.maxEntries && (charge === 0 || charge <= this.#room());
  }

  /** Budget bytes neither charged by payloads nor held by fetches in transit. */
  #room(): number {
    return this.budgetBytes - this.stats.chargedBytes - this.stats.transitBytes;
  }

  /**
   * Reserves memory for a fetch to read `want` bytes into: all of it while the budget has room,
   * else what is left but at least {@link minTransitChunkBytes}. Give it back with
   * {@link releaseTransit} once the bytes were flushed (or the fetch ended).
   */
  reserveTransit(want: number): number {
    const granted = Math.min(want, Math.max(this.#room(), minTransitChunkBytes));
    if (granted < want) this.stats.transitSqueezed++;
    this.stats.transitBytes += granted;
    return granted;
  }

  /** Gives back memory reserved with {@link reserveTransit}. */
  releaseTransit(bytes: number): void {
    this.stats.transitBytes -= bytes;
  }

  /**
   * Registers `source`, charging `charge` budget bytes, and returns the descriptor of its whole
   * range; or undefined (counted as rejected) when the budget or entry limit does not allow it.
   */
  register(source: PayloadSource, charge: number): Descriptor | undefined {
    const endpoint = this.#endpoint;
    if (endpoint === undefined) {
      throw new OdbError('ODB_ERR_INVALID_OPTION', 'the store has no endpoint yet (not listening)');
    }
    if (!this.hasRoomFor(charge)) {
      this.stats.rejectedFull++;
      return undefined;
    }
    const payloadId = nextPayloadId();
    const expiresAt = this.now() + this.ttlMs;
    const size = source.size;
    const open = size === undefined;
    const descriptor = signDescriptor(
      { endpoint, payloadId, offset: 0, length: size ?? 0, totalSize: size ?? 0, expiresAt, open },
      this.keyring.signing,
    );
    this.add({
      id: descriptor.payloadId.toString('hex'),
      source,
      charge,
      expiresAt,
      open,
      readers: 0,
      dropped: false,
    });
    return descriptor;
  }

  /** Holds `entry`, counted in the stats. */
  protected add(entry: StoreEntry): void {
    this.entries.set(entry.id, entry);
    this.stats.entries = this.entries.size;
    this.stats.chargedBytes += entry.charge;
    this.stats.registered++;
  }

  /**
   * Starts a read of the live entry with this hex id (pair with {@link endRead}); throws
   * ODB_ERR_NOT_FOUND or ODB_ERR_EXPIRED.
   */
  beginRead(id: string): StoreEntry {
    const entry = this.entries.get(id);
    if (!entry) throw new OdbError('ODB_ERR_NOT_FOUND', `payload ${id}`);
    if (entry.readers === 0 && this.now() > entry.expiresAt) {
      this.drop(entry, 'expired');
      throw new OdbError('ODB_ERR_EXPIRED', `payload ${id}`);
    }
    entry.readers++;
    return entry;
  }

  /** Ends a read begun with {@link beginRead}. */
  endRead(entry: StoreEntry): void {
    entry.readers--;
    if (entry.dropped && entry.readers === 0) entry.source.abandon?.();
  }

  /** True when an entry with this hex id is held. */
  has(id: string): boolean {
    return this.entries.has(id);
  }

  /**
   * Releases the entry now (idempotent). Fetches already streaming it finish. Counted entries
   * (stream mode) go with their last reference instead, not here.
   */
  release(id: string): boolean {
    const entry = this.entries.get(id);
    if (!entry || this.isCounted(entry)) return false;
    this.drop(entry, 'released');
    return true;
  }

  /** Drops every expired entry that no fetch is streaming. */
  sweep(): void {
    const now = this.now();
    for (const entry of this.entries.values()) {
      if (entry.readers === 0 && now > entry.expiresAt) this.drop(entry, 'expired');
    }
  }

  /** Stops expiring entries and drops them all. */
  close(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const entry of this.entries.values()) this.drop(entry, 'released');
  }

  /** True for an entry that goes with its last reference rather than with {@link release}. */
  protected isCounted(_entry: StoreEntry): boolean {
    return false;
  }

  /** Takes `entry` out of the store; the source is abandoned after its last reader. */
  protected drop(entry: StoreEntry, why: 'released' | 'expired'): void {
    if (this.entries.get(entry.id) !== entry) return;
    this.entries.delete(entry.id);
    this.stats.entries = this.entries.size;
    this.stats.chargedBytes -= entry.charge;
    this.stats[why]++;
    entry.dropped = true;
    this.#onDrop?.(entry, why);
    // Fetches still streaming finish first; then the producer (if any) is told to stop.
    if (entry.readers === 0) entry.source.abandon?.();
  }
}

// Payload ids come from a pool refilled 4 KiB at a time: one CSPRNG call per 256 ids.
let idPool = Buffer.alloc(0);
let idPoolAt = 0;

function nextPayloadId(): Buffer {
  if (idPoolAt + payloadIdBytes > idPool.length) {
    idPool = randomFillSync(Buffer.allocUnsafe(4096));
    idPoolAt = 0;
  }
  idPoolAt += payloadIdBytes;
  return idPool.subarray(idPoolAt - payloadIdBytes, idPoolAt);
}
