/**
 * One measured run against a running chain: the load generator in its own process (on the
 * client host), and at the start and end of its measured window the kernel's CPU accounting and
 * the byte counters of every tier.
 */
import type { Chain } from '../dev/harness/chain.js';
import { runLoadProcess } from '../src/demo/load-process.js';
import { peakRssBytes, tierCpuMicros } from '../src/demo/proc-stat.js';
import type { TierHandle } from '../src/demo/tier-handle.js';
import type { LoadResult } from '../src/loadgen/load.js';
import type { ByteCount, Environment } from './environment.js';

/** How to load. */
export interface LoadSettings {
  /** Open loop at this rate; undefined: closed loop with `connections`. */
  readonly rate?: number;
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** SHA-256 one response in this many (every response is length-checked). */
  readonly hashEvery: number;
}

/** What one tier spent per request in one run. */
export interface TierFigures {
  readonly cpuUsPerRequest: number;
  readonly rxBytesPerRequest: number;
  readonly txBytesPerRequest: number;
  /** Peak resident set size of the tier's processes so far (VmHWM). */
  readonly peakRssBytes: number;
}

/** One run: the load generator's result and each tier's figures. */
export interface RunFigures {
  readonly load: LoadResult;
  readonly tiers: Readonly<Record<string, TierFigures>>;
  /** The chain's extra counters over the measured window, per request. */
  readonly countersPerRequest?: Readonly<Record<string, number>>;
}

/** Any chain the harness can measure: its tiers, its entry URL, and each tier's byte counters. */
export interface MeasuredChain {
  readonly processes: readonly TierHandle[];
  url(path: string): string;
  bytes(tier: string): Promise<ByteCount>;
  /** More cumulative counters to report per request (e.g. the IS's lazy-buffer faults). */
  counters?(): Promise<Readonly<Record<string, number>>>;
}

/** A chain of `odb` tiers or third-party intermediates, counted the environment's way. */
export function measured(env: Environment, chain: Chain): MeasuredChain {
  return {
    processes: chain.processes,
    url: (path) => chain.url(path),
    bytes: (tier) => env.bytes(chain, tier),
  };
}

interface Snapshot {
  readonly cpu: number[];
  readonly bytes: ByteCount[];
  readonly counters: Readonly<Record<string, number>>;
}

async function snapshot(chain: MeasuredChain): Promise<Snapshot> {
  const cpu = chain.processes.map(tierCpuMicros);
  const bytes = await Promise.all(chain.processes.map((p) => chain.bytes(p.name)));
  const counters = (await chain.counters?.()) ?? {};
  return { cpu, bytes, counters };
}

/** Load arguments for `odb load` (synthetic bodies, checked). */
export function loadArgs(url: string, s: LoadSettings): string[] {
  const args = [
    '--url',
    url,
    '--connections',
    String(s.connections),
    '--duration',
    `${s.durationMs}ms`,
    '--warmup',
    `${s.warmupMs}ms`,
    '--expect-synthetic',
    '--hash-every',
    String(s.hashEvery),
  ];
  if (s.rate !== undefined) args.push('--rate', String(s.rate));
  return args;
}

/** Runs one load against `chain` and measures every tier over the load's measured window. */
export async function measureRun(
  env: Environment,
  chain: MeasuredChain,
  path: string,
  settings: LoadSettings,
): Promise<RunFigures> {
  let before: Snapshot | undefined;
  const load = await runLoadProcess(
    loadArgs(chain.url(path), settings),
    async () => {
      before = await snapshot(chain);
    },
    env.client.prefix,
  );
  const after = await snapshot(chain);
  const start = before ?? after;
  const requests = Math.max(1, load.requests);
  const tiers: Record<string, TierFigures> = {};
  chain.processes.forEach((tier, i) => {
    tiers[tier.name] = {
      cpuUsPerRequest: (after.cpu[i]! - start.cpu[i]!) / requests,
      rxBytesPerRequest: (after.bytes[i]!.rx - start.bytes[i]!.rx) / requests,
      txBytesPerRequest: (after.bytes[i]!.tx - start.bytes[i]!.tx) / requests,
      peakRssBytes: tier.pids().reduce((sum, pid) => sum + peakRssBytes(pid), 0),
    };
  });
  const names = Object.keys(after.counters);
  if (names.length === 0) return { load, tiers };
  const countersPerRequest = Object.fromEntries(
    names.map((k) => [k, (after.counters[k]! - (start.counters[k] ?? 0)) / requests]),
  );
  return { load, tiers, countersPerRequest };
}

/** A run without tier figures (saturation steps). */
export function loadOnly(
  env: Environment,
  chain: Pick<MeasuredChain, 'url'>,
  path: string,
  settings: LoadSettings,
): Promise<LoadResult> {
  return runLoadProcess(loadArgs(chain.url(path), settings), undefined, env.client.prefix);
}
