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

/**
 * Paced collections. Most are scavenges: memory that died young (a lazy buffer written out and
 * dropped within its request) goes with one, and a full collection costs more than its own
 * time: V8 then throws away optimised code that embedded objects it freed and compiles it again
 * (at saturation most of a tier's compiler time). Every `fullEvery`-th collection is full, for
 * what lived long enough to be promoted.
 */
export class CollectionPacer {
  readonly #gc: GcFunction | undefined;
  readonly #bytesBetween: number;
  readonly #minIntervalMs: number;
  readonly #fullEvery: number;
  #noted = 0;
  #lastGc = 0;
  #sinceFull = 0;

  /** Collects after every `bytesBetween` bytes noted, at most once per `minIntervalMs`. */
  constructor(
    gc: GcFunction | undefined,
    bytesBetween = 32 * 1024 * 1024,
    minIntervalMs = 250,
    fullEvery = 4,
  ) {
    this.#gc = gc;
    this.#bytesBetween = bytesBetween;
    this.#minIntervalMs = minIntervalMs;
    this.#fullEvery = fullEvery;
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
    if (++this.#sinceFull < this.#fullEvery) return this.collectYoung();
    this.collect();
  }

  /** A full collection now, for any reason: it frees what was noted so far, too. */
  collect(): void {
    if (!this.#gc) return;
    this.#lastGc = Date.now();
    this.#noted = 0;
    this.#sinceFull = 0;
    this.#gc();
  }

  /** A scavenge now: frees what died young (finalizers run after it, in an immediate). */
  collectYoung(): void {
    if (!this.#gc) return;
    this.#lastGc = Date.now();
    this.#noted = 0;
    this.#gc({ type: 'minor' });
  }
}
