/**
 * Saturation search: the highest offered rate a chain holds while meeting a latency bound.
 * Rates grow geometrically until a step fails, then a bisection narrows the boundary. A step
 * holds when the generator sent every due request, at least 95 % completed without error, and
 * the p99 latency (corrected for coordinated omission) is within the bound.
 */
import type { Chain } from '../dev/harness/chain.js';
import type { Environment } from './environment.js';
import { loadOnly, type LoadSettings } from './measure.js';

/** One step of the search. */
export interface SaturationStep {
  readonly offered: number;
  readonly achieved: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly errors: number;
  readonly missed: number;
  readonly held: boolean;
}

/** The search's outcome. */
export interface SaturationResult {
  /** Highest offered rate that held, 0 if none did. */
  readonly maxRate: number;
  readonly steps: readonly SaturationStep[];
}

/** Options of a search. */
export interface SaturationOptions {
  readonly startRate: number;
  readonly maxRate: number;
  readonly p99BoundUs: number;
  readonly stepMs: number;
  readonly warmupMs: number;
  readonly connections: number;
  readonly bisections: number;
}

export async function searchSaturation(
  env: Environment,
  chain: Chain,
  path: string,
  o: SaturationOptions,
  onStep?: (step: SaturationStep) => void,
): Promise<SaturationResult> {
  const steps: SaturationStep[] = [];
  const attempt = async (rate: number): Promise<boolean> => {
    const settings: LoadSettings = {
      rate: Math.round(rate),
      connections: o.connections,
      durationMs: o.stepMs,
      warmupMs: o.warmupMs,
      hashEvery: 16,
    };
    const r = await loadOnly(env, chain, path, settings);
    const achieved = r.requestsPerSecond;
    const held =
      r.missed === 0 &&
      achieved >= 0.95 * settings.rate! &&
      r.errors === 0 &&
      r.latencyUs.p99 <= o.p99BoundUs;
    const step = {
      offered: settings.rate!,
      achieved,
      p50Us: r.latencyUs.p50,
      p99Us: r.latencyUs.p99,
      errors: r.errors,
      missed: r.missed,
      held,
    };
    steps.push(step);
    onStep?.(step);
    return held;
  };
  let good = 0;
  let bad = 0;
  for (let rate = o.startRate; rate <= o.maxRate; rate *= 1.5) {
    if (await attempt(rate)) good = rate;
    else {
      bad = rate;
      break;
    }
  }
  if (bad > 0) {
    for (let i = 0; i < o.bisections && bad - good > Math.max(5, 0.05 * bad); i++) {
      const mid = good === 0 ? bad / 2 : (good + bad) / 2;
      if (await attempt(mid)) good = mid;
      else bad = mid;
    }
  }
  return { maxRate: Math.round(good), steps };
}
