/**
 * Fetch slots of one store endpoint: at most `size` fetches hold a connection at once; the next
 * ones wait in order, each for a bounded time. A fetch paused by its client's backpressure keeps
 * its connection, so without a bound on the wait a few slow clients would make every other
 * delivery time out in the queue, reported as if the store were unreachable.
 */
import { OdbError } from '../core/errors.js';

/** Counters of a set of slots; exposed as metrics. */
export interface SlotStats {
  /** Fetches that found every slot taken and waited. */
  queued: number;
  /** Fetches that gave up waiting (ODB_ERR_STORE_QUEUE_TIMEOUT). */
  queueTimeouts: number;
}

interface Waiter {
  readonly grant: (release: () => void) => void;
  readonly fail: (err: OdbError) => void;
}

/** A counting semaphore with a bounded, first-come wait. */
export class ConnectionSlots {
  readonly size: number;
  readonly #stats: SlotStats;
  #taken = 0;
  readonly #waiting: Waiter[] = [];

  /** `stats` is shared by the slots of every endpoint of a client. */
  constructor(size: number, stats: SlotStats) {
    this.size = size;
    this.#stats = stats;
  }

  /** Slots in use. */
  get taken(): number {
    return this.#taken;
  }

  /** Fetches waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves with the function that gives the slot back (call it once), as soon as one is free.
   * Rejects with ODB_ERR_STORE_QUEUE_TIMEOUT after `timeoutMs` of waiting, or with
   * ODB_ERR_FETCH_ABORTED when `signal` aborts first.
   */
  acquire(timeoutMs: number, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortedWhileQueued());
    if (this.#taken < this.size) {
      this.#taken++;
      return Promise.resolve(this.#releaser());
    }
    this.#stats.queued++;
    return new Promise((resolve, reject) => {
      const leave = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
      };
      const waiter: Waiter = {
        grant: (release) => {
          leave();
          resolve(release);
        },
        fail: (err) => {
          leave();
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.#stats.queueTimeouts++;
        waiter.fail(
          new OdbError(
            'ODB_ERR_STORE_QUEUE_TIMEOUT',
            `all ${this.size} connections busy for ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const onAbort = (): void => waiter.fail(abortedWhileQueued());
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting[0];
      // The slot passes straight to the first waiter: nobody can overtake the queue.
      if (next) next.grant(this.#releaser());
      else this.#taken--;
    };
  }
}

function abortedWhileQueued(): OdbError {
  return new OdbError('ODB_ERR_FETCH_ABORTED', 'fetch aborted by its caller while queued');
}
