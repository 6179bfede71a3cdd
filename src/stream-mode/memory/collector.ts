/**
 * Full garbage collections asked of V8 by stream mode, in the isolate that imports this module.
 *
 * Stream mode's memory is large and short-lived while the JavaScript heaps that hold it stay
 * small, so V8 may let hundreds of megabytes wait for a collection their heaps alone would not
 * call for: a lazy buffer's fetched pages are freed only once the application's isolate collects
 * the buffer, and without the addon an own payload's SharedArrayBuffer only once every isolate
 * that holds a wrapper of it (the application thread and the agent) has collected that wrapper.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's gc(): a full collection, or with `{ type: 'minor' }` a scavenge of the young generation. */
export type GcFunction = (options?: { type: 'minor' | 'major' }) => void;

/** This isolate's GC function (V8's --expose-gc, set at run time), if V8 allows it. */
export function obtainGc(): GcFunction | undefined {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as GcFunction;
  } catch {
    return undefined;
  }
}

/** Collects after every `bytesBetween` bytes noted, at most once per `minIntervalMs`. */
export class CollectionPacer {
  readonly #gc: (() => void) | undefined;
  readonly #bytesBetween: number;
  readonly #minIntervalMs: number;
  #noted = 0;
  #lastGc = 0;

  constructor(gc: (() => void) | undefined, bytesBetween = 32 * 1024 * 1024, minIntervalMs = 250) {
    this.#gc = gc;
    this.#bytesBetween = bytesBetween;
    this.#minIntervalMs = minIntervalMs;
  }

  /** True when V8 gave this isolate a GC function. */
  get available(): boolean {
    return this.#gc !== undefined;
  }

  /** Notes `bytes` of memory that only a collection in this isolate will free. */
  note(bytes: number): void {
    this.#noted += bytes;
    if (!this.#gc || this.#noted < this.#bytesBetween) return;
    if (Date.now() - this.#lastGc < this.#minIntervalMs) return;
    this.collect();
  }

  /** Collects now, for any reason: it frees what was noted so far, too. */
  collect(): void {
    if (!this.#gc) return;
    this.#lastGc = Date.now();
    this.#noted = 0;
    this.#gc();
  }
}
