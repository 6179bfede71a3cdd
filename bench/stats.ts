/** Repeated runs are summarised as a median with its spread (lowest and highest run). */

/** Median and spread of one figure over repeated runs. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

/** Median (mean of the two middle values for an even count), min and max. */
export function spread(values: readonly number[]): Spread {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN, runs: 0 };
  const mid = finite.length >> 1;
  const median = finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
  return { median, min: finite[0]!, max: finite.at(-1)!, runs: finite.length };
}

/** `median [min–max]` with the given number of decimals. */
export function formatSpread(s: Spread, decimals = 0): string {
  if (!Number.isFinite(s.median)) return 'n/a';
  const f = (v: number): string => v.toFixed(decimals);
  return s.runs > 1 ? `${f(s.median)} [${f(s.min)}–${f(s.max)}]` : f(s.median);
}

/** a / b, NaN when b is 0. */
export function ratio(a: number, b: number): number {
  return b === 0 ? NaN : a / b;
}
