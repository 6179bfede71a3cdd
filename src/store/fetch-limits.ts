/**
 * How many fetches a store streams at once: in all, per payload and per peer. Without the last
 * two, one leaked descriptor, or one peer opening fetches it never reads, could take every slot
 * and leave other front ends with ODB_ERR_BUSY.
 */
import { OdbError } from '../core/errors.js';

/** Limits of concurrent fetches. */
export interface FetchLimits {
  /** Fetches streaming at once, whatever they fetch. */
  readonly maxFetches: number;
  /** Fetches of one payload at once. */
  readonly maxFetchesPerPayload: number;
  /** Fetches from one remote address at once. */
  readonly maxFetchesPerPeer: number;
}

/** Which limit refused a fetch. */
export type FetchLimitKind = 'total' | 'payload' | 'peer';

/**
 * Defaults. A header-mode payload is fetched once. A stream-mode holder fetches ranges of one
 * payload with up to 16 connections per store (src/stream-mode/agent/worker.ts), so 64 per payload
 * lets four holders fetch one payload at full speed; a front end opens at most
 * `--store-connections` (256) to a store, and a host may run several: 1024 per peer.
 */
export const defaultFetchLimits: FetchLimits = {
  maxFetches: 4096,
  maxFetchesPerPayload: 64,
  maxFetchesPerPeer: 1024,
};

/** Counts fetches in flight and admits or refuses new ones. */
export class FetchAdmission {
  readonly limits: FetchLimits;
  /** Refusals by the limit that was reached. */
  readonly refused: Record<FetchLimitKind, number> = { total: 0, payload: 0, peer: 0 };
  #inFlight = 0;
  readonly #perPayload = new Map<string, number>();
  readonly #perPeer = new Map<string, number>();

  /** Limits left undefined take their default. */
  constructor(limits: Partial<FetchLimits> = {}) {
    this.limits = {
      maxFetches: limits.maxFetches ?? defaultFetchLimits.maxFetches,
      maxFetchesPerPayload: limits.maxFetchesPerPayload ?? defaultFetchLimits.maxFetchesPerPayload,
      maxFetchesPerPeer: limits.maxFetchesPerPeer ?? defaultFetchLimits.maxFetchesPerPeer,
    };
  }

  /** Fetches admitted and not yet ended. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Admits a fetch of payload `id` from `peer`; returns the function that ends it (call it once).
   * Throws ODB_ERR_BUSY naming the limit reached.
   */
  admit(id: string, peer: string): () => void {
    const { maxFetches, maxFetchesPerPayload, maxFetchesPerPeer } = this.limits;
    if (this.#inFlight >= maxFetches) this.#refuse('total', `${this.#inFlight} fetches in flight`);
    const ofPayload = this.#perPayload.get(id) ?? 0;
    if (ofPayload >= maxFetchesPerPayload) {
      this.#refuse('payload', `${ofPayload} fetches of this payload in flight`);
    }
    const ofPeer = this.#perPeer.get(peer) ?? 0;
    if (ofPeer >= maxFetchesPerPeer) this.#refuse('peer', `${ofPeer} fetches from ${peer}`);
    this.#inFlight++;
    this.#perPayload.set(id, ofPayload + 1);
    this.#perPeer.set(peer, ofPeer + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#inFlight--;
      decrement(this.#perPayload, id);
      decrement(this.#perPeer, peer);
    };
  }

  #refuse(kind: FetchLimitKind, detail: string): never {
    this.refused[kind]++;
    throw new OdbError('ODB_ERR_BUSY', detail);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

/** The peer a fetch is counted against: its remote address (IPv4-mapped IPv6 as IPv4). */
export function peerAddress(remoteAddress: string | undefined): string {
  if (!remoteAddress) return 'unknown';
  return remoteAddress.startsWith('::ffff:') ? remoteAddress.slice(7) : remoteAddress;
}
