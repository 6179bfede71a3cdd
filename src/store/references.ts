/**
 * Counting the processes that may still resolve a descriptor to a payload (stream mode): a ledger
 * of retain and release tokens, and the token a descriptor grants.
 */
import { macBytes } from '../protocol/descriptor.js';

/**
 * The references to one counted payload (stream mode), by token: the MAC of the descriptor that
 * grants the reference. A forwarder retains a token for the next holder, and that holder releases
 * the same token when done; the two messages come from different processes and may reach the
 * owner in either order. A release that arrives before its retain is held here and cancels the
 * retain when it comes, so the count can never reach zero while a holder still needs the bytes.
 */
export class ReferenceLedger {
  /** Tokens retained and not yet released, with multiplicity (equal derivations share a MAC). */
  readonly #held = new Map<string, number>();
  /** Releases that overtook their retain. */
  readonly #early = new Map<string, number>();
  #count = 0;

  /** References held now. */
  get count(): number {
    return this.#count;
  }

  /** Releases still waiting for their retain (for diagnostics). */
  get earlyReleases(): number {
    let n = 0;
    for (const k of this.#early.values()) n += k;
    return n;
  }

  retain(token: string): void {
    if (take(this.#early, token)) return;
    this.#held.set(token, (this.#held.get(token) ?? 0) + 1);
    this.#count++;
  }

  release(token: string): void {
    if (take(this.#held, token)) {
      this.#count--;
      return;
    }
    this.#early.set(token, (this.#early.get(token) ?? 0) + 1);
  }
}

/** Removes one occurrence of `key`; false when there is none. */
function take(counts: Map<string, number>, key: string): boolean {
  const n = counts.get(key);
  if (n === undefined) return false;
  if (n === 1) counts.delete(key);
  else counts.set(key, n - 1);
  return true;
}

/** The token of the reference a descriptor grants: its MAC, in hex. */
export function referenceToken(descriptorBytes: Buffer): string {
  return descriptorBytes.subarray(descriptorBytes.length - macBytes).toString('hex');
}
