import type { TierMetrics } from './metrics.js';

/** Whether a tier takes part in ODB. */
export type TierMode = 'odb' | 'vanilla';

/** A started tier. */
export interface RunningTier {
  /** Bound addresses by listener name (`http`, `store`, `metrics`, …). */
  readonly addresses: Readonly<Record<string, string>>;
  readonly metrics: TierMetrics;
  /** Stops listening and lets in-flight work finish. */
  close(): Promise<void>;
}
