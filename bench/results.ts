/** The shape of `results.json`: every raw figure, with the run's context. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import type { IntermediateKind } from '../dev/harness/chain.js';
import type { ClosedLoopEntry } from './closed-loop.js';
import type { EchoFraming, EchoRun } from './echo.js';
import type { RunFigures } from './measure.js';
import type { SaturationResult } from './saturation.js';
import { spread, type Spread } from './stats.js';

/** One point of the matrix. */
export interface Scenario {
  readonly intermediates: number;
  /** What ran as intermediate ('none' when there is none). */
  readonly isKind: IntermediateKind | 'none';
  readonly mode: 'vanilla' | 'odb';
  readonly size: number;
  /** Fixed request rate of the runs. */
  readonly rate: number;
}

/** Medians and spreads of a point's runs. */
export interface PointSummary {
  readonly requestsPerSecond: Spread;
  readonly latencyUs: {
    readonly p50: Spread;
    readonly p90: Spread;
    readonly p99: Spread;
    readonly p999: Spread;
  };
  readonly errors: number;
  /** Requests the generator could not send in time (the rate was not held). */
  readonly missed: number;
  /** Medians of the chain's extra counters per request (stream mode: the IS's faults). */
  readonly countersPerRequest: Readonly<Record<string, Spread>>;
  readonly tiers: Readonly<
    Record<
      string,
      {
        readonly cpuUsPerRequest: Spread;
        readonly rxBytesPerRequest: Spread;
        readonly txBytesPerRequest: Spread;
        readonly peakRssBytes: Spread;
      }
    >
  >;
}

export interface PointResult {
  readonly scenario: Scenario;
  readonly runs: readonly RunFigures[];
  readonly summary: PointSummary;
}

export interface SaturationEntry {
  readonly intermediates: number;
  readonly isKind: IntermediateKind;
  readonly mode: 'vanilla' | 'odb';
  readonly size: number;
  /** Set for the CPU-quota experiment: which tier was limited to how many CPUs. */
  readonly quota?: { readonly tier: string; readonly cpus: number };
  readonly result: SaturationResult;
}

/** One point of the stream-mode scenario (see stream.ts). */
export interface StreamEntry {
  /** `proxy`: the IS pipes bodies; `hash`: it reads every body. */
  readonly isKind: 'proxy' | 'hash';
  readonly mode: 'vanilla' | 'stream';
  readonly size: number;
  readonly rate: number;
  readonly runs: readonly RunFigures[];
  readonly summary: PointSummary;
}

export interface EchoEntry {
  readonly framing: EchoFraming;
  readonly size: number;
  readonly runs: readonly EchoRun[];
  readonly exchangesPerSecond: Spread;
  readonly p95Us: Spread;
  readonly serverCpuUsPerExchange: Spread;
}

export interface BenchMeta {
  readonly command: string;
  readonly startedAt: string;
  finishedAt?: string;
  readonly environment: string;
  readonly byteSource: string;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryBytes: number;
    readonly kernel: string;
    readonly os: string;
  };
  readonly versions: Readonly<Record<string, string>>;
  readonly options: Readonly<Record<string, unknown>>;
}

export interface BenchResults {
  readonly meta: BenchMeta;
  readonly points: PointResult[];
  readonly saturation: SaturationEntry[];
  readonly echo: EchoEntry[];
  readonly stream: StreamEntry[];
  /** The closed-loop scenario (closed-loop.ts); absent in results written before it existed. */
  readonly closedLoop?: ClosedLoopEntry[];
}

/** Summarises the runs of a point. */
export function summarise(runs: readonly RunFigures[]): PointSummary {
  const tierNames = Object.keys(runs[0]?.tiers ?? {});
  const pick = (f: (r: RunFigures) => number): Spread => spread(runs.map(f));
  return {
    requestsPerSecond: pick((r) => r.load.requestsPerSecond),
    latencyUs: {
      p50: pick((r) => r.load.latencyUs.p50),
      p90: pick((r) => r.load.latencyUs.p90),
      p99: pick((r) => r.load.latencyUs.p99),
      p999: pick((r) => r.load.latencyUs.p999),
    },
    errors: runs.reduce((n, r) => n + r.load.errors, 0),
    missed: runs.reduce((n, r) => n + r.load.missed, 0),
    countersPerRequest: Object.fromEntries(
      Object.keys(runs[0]?.countersPerRequest ?? {}).map((k) => [
        k,
        pick((r) => r.countersPerRequest?.[k] ?? NaN),
      ]),
    ),
    tiers: Object.fromEntries(
      tierNames.map((t) => [
        t,
        {
          cpuUsPerRequest: pick((r) => r.tiers[t]!.cpuUsPerRequest),
          rxBytesPerRequest: pick((r) => r.tiers[t]!.rxBytesPerRequest),
          txBytesPerRequest: pick((r) => r.tiers[t]!.txBytesPerRequest),
          peakRssBytes: pick((r) => r.tiers[t]!.peakRssBytes),
        },
      ]),
    ),
  };
}

/** A program's version from whatever it prints (nginx prints it on stderr). */
function versionOf(command: string, args: string[], pattern: RegExp): string {
  const run = spawnSync(command, args, { encoding: 'utf8' });
  if (run.error) return 'not installed';
  return pattern.exec(`${run.stdout}\n${run.stderr}`)?.[1] ?? 'unknown';
}

function packageVersion(name: string): string {
  try {
    const path = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Machine description and component versions. */
export function describeRun(
  command: string,
  environment: string,
  byteSource: string,
  options: Record<string, unknown>,
): BenchMeta {
  const osRelease = (() => {
    try {
      return (
        /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown'
      );
    } catch {
      return 'unknown';
    }
  })();
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return {
    command,
    startedAt: new Date().toISOString(),
    environment,
    byteSource,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryBytes: totalmem(),
      kernel: release(),
      os: osRelease,
    },
    versions: {
      odb: pkg.version,
      commit: versionOf('git', ['rev-parse', '--short', 'HEAD'], /^(\w+)/),
      node: process.version,
      undici: packageVersion('undici'),
      nginx: versionOf('nginx', ['-v'], /nginx\/(\S+)/),
      haproxy: versionOf('haproxy', ['-v'], /version (\S+)/),
    },
    options,
  };
}
