/**
 * Deterministic synthetic payloads (`GET /bytes/<n>?seed=s` on `odb be`). The byte at offset i
 * depends only on the seed and i, so any range of any length is cheap to produce and to check:
 *
 *   byte(seed, i) = table(seed)[i mod 262139]
 *
 * where table(seed) holds the low bytes of successive xorshift32 states started from
 * `seed XOR 0x9E3779B9` (0x9E3779B9 if that is 0). The period is prime, so a range shifted by any
 * amount below it (a page, a chunk) never matches the right bytes by accident.
 */
import { createHash } from 'node:crypto';
import type { PayloadSource } from './source.js';

export const syntheticPeriod = 262_139;
export const defaultSyntheticSeed = 1;
const maxCachedSeeds = 16;

/** Cached tables, each stored twice in a row so any window of up to one period is contiguous. */
const doubledTables = new Map<number, Buffer>();

function doubledTable(seed: number): Buffer {
  let table = doubledTables.get(seed);
  if (table) return table;
  table = Buffer.allocUnsafe(2 * syntheticPeriod);
  let state = (seed ^ 0x9e3779b9) >>> 0 || 0x9e3779b9;
  for (let i = 0; i < syntheticPeriod; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    table[i] = state & 0xff;
  }
  table.copy(table, syntheticPeriod, 0, syntheticPeriod);
  if (doubledTables.size >= maxCachedSeeds)
    doubledTables.delete(doubledTables.keys().next().value!);
  doubledTables.set(seed, table);
  return table;
}

/** True for a valid seed: an integer in 0..2^32-1. */
export function isSyntheticSeed(seed: number): boolean {
  return Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff;
}

/**
 * The bytes of `[start, end)` as views of a shared read-only table (no copy): at most one period
 * per chunk. Callers must not modify them.
 */
export function* syntheticChunks(seed: number, start: number, end: number): Generator<Buffer> {
  const table = doubledTable(seed);
  for (let pos = start; pos < end;) {
    const at = pos % syntheticPeriod;
    const length = Math.min(syntheticPeriod, end - pos);
    yield table.subarray(at, at + length);
    pos += length;
  }
}

/** The bytes of `[start, end)` in one new buffer (for small sizes and tests). */
export function syntheticBytes(seed: number, start: number, end: number): Buffer {
  return Buffer.concat([...syntheticChunks(seed, start, end)], end - start);
}

/** Hex SHA-256 of `[start, end)`: what a client compares a received body with. */
export function syntheticSha256(seed: number, start: number, end: number): string {
  const hash = createHash('sha256');
  for (const chunk of syntheticChunks(seed, start, end)) hash.update(chunk);
  return hash.digest('hex');
}

/** A synthetic payload as a buffer-store source: registered without holding any memory. */
export class SyntheticPayload implements PayloadSource {
  constructor(
    readonly seed: number,
    readonly start: number,
    readonly size: number,
  ) {}

  async *read(start: number, end: number | undefined): AsyncIterable<Buffer> {
    yield* syntheticChunks(this.seed, this.start + start, this.start + (end ?? this.size));
  }
}
