/** Options of `npm run bench`, and the profiles that preset them. */
import { z } from 'zod';
import { defineOptions, optionTypes } from '../src/cli/options.js';
import { parseSize } from '../src/core/units.js';
import { closedLoopChains } from './closed-loop.js';

const list = <T>(parse: (item: string) => T) =>
  z.union([z.string(), z.array(z.union([z.string(), z.number()]))]).transform((v, ctx) => {
    const items = Array.isArray(v) ? v.map(String) : v.split(',');
    try {
      return items.map((item) => parse(item.trim()));
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

function oneOf<T extends string>(allowed: readonly T[]) {
  return (item: string): T => {
    if (!allowed.includes(item as T))
      throw new Error(`${item} is not one of ${allowed.join(', ')}`);
    return item as T;
  };
}

/** A duration wrk can take: whole seconds. */
const wholeSeconds = optionTypes.duration.refine((ms) => ms % 1000 === 0, {
  message: 'wrk takes whole seconds',
});

/** `64KiB:0.5` → a tier and a CPU share. */
function quota(item: string): { tier: 'fe' | 'is1'; cpus: number } {
  const [tier, cpus] = item.split(':');
  if ((tier !== 'fe' && tier !== 'is1') || !(Number(cpus) > 0))
    throw new Error(`${item} is not fe:CPUS or is1:CPUS`);
  return { tier, cpus: Number(cpus) };
}

export const benchOptions = defineOptions({
  profile: {
    flag: '--profile <name>',
    description:
      'preset: full (the published run), smoke (seconds, loopback), stream (stream mode only) or closed-loop (ODB and stock chains at closed-loop saturation, loopback)',
    schema: z.enum(['full', 'smoke', 'stream', 'closed-loop']),
    default: 'full',
  },
  scenarios: {
    flag: '--scenarios <list>',
    description: 'what to run: matrix, saturation, quota, echo, stream, closed-loop',
    schema: list(
      oneOf(['matrix', 'saturation', 'quota', 'echo', 'stream', 'closed-loop'] as const),
    ),
    default: 'matrix,saturation,quota,echo,stream',
  },
  env: {
    flag: '--env <name>',
    description: 'testbed (hosts in network namespaces; needs root) or loopback',
    schema: z.enum(['testbed', 'loopback']),
    default: 'testbed',
  },
  intermediates: {
    flag: '--intermediates <list>',
    description: 'numbers of intermediate tiers (n in FE–nIS–BE)',
    schema: list((s) => z.coerce.number().int().min(0).max(2).parse(s)),
    default: '0,1,2',
  },
  isKinds: {
    flag: '--is-kinds <list>',
    description: 'what runs as intermediate: odb (odb is), nginx, haproxy',
    schema: list(oneOf(['odb', 'nginx', 'haproxy'] as const)),
    default: 'odb,nginx',
  },
  modes: {
    flag: '--modes <list>',
    description: 'vanilla, odb',
    schema: list(oneOf(['vanilla', 'odb'] as const)),
    default: 'vanilla,odb',
  },
  sizes: {
    flag: '--sizes <list>',
    description: 'payload sizes',
    schema: list((s) => parseSize(s)),
    default: '1KiB,3KiB,16KiB,32KiB,64KiB,256KiB,1MiB',
  },
  rates: {
    flag: '--rates <list>',
    description: 'fixed request rate per size (one value, or one per size)',
    schema: list((s) => z.coerce.number().int().positive().parse(s)),
    default: '500,500,500,500,300,200,70',
  },
  repeats: {
    flag: '--repeats <n>',
    description: 'runs per point (medians are reported)',
    schema: optionTypes.count,
    default: 3,
  },
  duration: {
    flag: '--duration <duration>',
    description: 'measured time per run',
    schema: optionTypes.duration,
    default: '3s',
  },
  warmup: {
    flag: '--warmup <duration>',
    description: 'unmeasured time before each run',
    schema: optionTypes.duration,
    default: '1s',
  },
  connections: {
    flag: '--connections <n>',
    description: 'most requests in flight at the fixed rate',
    schema: optionTypes.count,
    default: 64,
  },
  threshold: {
    flag: '--threshold <size>',
    description: 'BE threshold in odb mode (low, so that every size takes the shortcut)',
    schema: optionTypes.size,
    default: '1KiB',
  },
  saturationSizes: {
    flag: '--saturation-sizes <list>',
    description: 'sizes of the saturation search (FE–1IS–BE, odb is); empty: none',
    schema: list((s) => (s === '' ? undefined : parseSize(s))).transform((v) =>
      v.filter((x): x is number => x !== undefined),
    ),
    default: '64KiB,1MiB',
  },
  saturationMaxRate: {
    flag: '--saturation-max-rate <n>',
    description: 'highest request rate the saturation search offers (req/s)',
    schema: optionTypes.count,
    default: 20_000,
  },
  sloP99: {
    flag: '--slo-p99 <duration>',
    description: 'latency bound of the saturation search',
    schema: optionTypes.duration,
    default: '50ms',
  },
  quotas: {
    flag: '--quotas <list>',
    description: 'CPU-quota experiments (§3.6.4): tier:cpus, tier fe or is1; empty: none',
    schema: list((s) => (s === '' ? undefined : quota(s))).transform((v) =>
      v.filter((x) => x !== undefined),
    ),
    default: 'fe:0.5,is1:0.5',
  },
  quotaSize: {
    flag: '--quota-size <size>',
    description: 'payload of the quota experiments',
    schema: optionTypes.size,
    default: '32KiB',
  },
  echoSizes: {
    flag: '--echo-sizes <list>',
    description: 'message sizes of the echo scenario; empty: none',
    schema: list((s) => (s === '' ? undefined : parseSize(s))).transform((v) =>
      v.filter((x): x is number => x !== undefined),
    ),
    default: '64,512,2KiB,8KiB',
  },
  echoConnections: {
    flag: '--echo-connections <n>',
    description: 'echo connections',
    schema: optionTypes.count,
    default: 64,
  },
  streamSizes: {
    flag: '--stream-sizes <list>',
    description: 'payload sizes of the stream-mode scenario',
    schema: list((s) => parseSize(s)),
    default: '64KiB,1MiB',
  },
  streamRates: {
    flag: '--stream-rates <list>',
    description: 'fixed request rate per stream size (one value, or one per size)',
    schema: list((s) => z.coerce.number().int().positive().parse(s)),
    default: '100,20',
  },
  streamWarmup: {
    flag: '--stream-warmup <duration>',
    description:
      'unmeasured closed-loop load per size when a stream chain starts, so V8 has optimised the hot code of both modes before the fixed-rate runs',
    schema: optionTypes.duration,
    default: '5s',
  },
  closedChains: {
    flag: '--closed-chains <list>',
    description: `chains of the closed-loop scenario: ${closedLoopChains.join(', ')}`,
    schema: list(oneOf(closedLoopChains)),
    default: closedLoopChains.join(','),
  },
  closedSizes: {
    flag: '--closed-sizes <list>',
    description: 'file sizes of the closed-loop scenario',
    schema: list((s) => parseSize(s)),
    default: '1KiB,64KiB,1MiB,16MiB',
  },
  wrkThreads: {
    flag: '--wrk-threads <n>',
    description: 'closed loop: wrk threads (-t)',
    schema: optionTypes.count,
    default: 1,
  },
  wrkConnections: {
    flag: '--wrk-connections <n>',
    description: 'closed loop: wrk connections (-c), each with one request in flight',
    schema: optionTypes.count,
    default: 8,
  },
  wrkDuration: {
    flag: '--wrk-duration <duration>',
    description: 'closed loop: measured wrk run (-d, whole seconds)',
    schema: wholeSeconds,
    default: '5s',
  },
  wrkWarmup: {
    flag: '--wrk-warmup <duration>',
    description: 'closed loop: unmeasured wrk run before each cell (whole seconds; 0s: none)',
    schema: wholeSeconds,
    default: '2s',
  },
  wrkTimeout: {
    flag: '--wrk-timeout <duration>',
    description: 'closed loop: a response slower than this is a timeout error (whole seconds)',
    schema: wholeSeconds,
    default: '10s',
  },
  maxOtherCpu: {
    flag: '--max-other-cpu <share>',
    description:
      'closed loop: a run during which other work (the rest of the machine, and the host as steal) used more than this share of one CPU is measured again (3 tries in all)',
    schema: z.coerce.number().min(0),
    default: 0.3,
  },
  quietWait: {
    flag: '--quiet-wait <duration>',
    description:
      'closed loop: longest wait before each run for the rest of the machine to be quiet (0s: none)',
    schema: optionTypes.duration,
    default: '60s',
  },
  out: {
    flag: '--out <dir>',
    description: 'output directory (default bench/out/<date>)',
    schema: optionTypes.path,
  },
  publish: {
    flag: '--publish <dir>',
    description: 'also write the report and charts there (e.g. docs/results)',
    schema: optionTypes.path,
  },
});

/** What a profile presets (flags still win). */
export const profiles: Record<
  'full' | 'smoke' | 'stream' | 'closed-loop',
  Record<string, unknown>
> = {
  full: {},
  // About 5 minutes: 6 chains × 4 sizes × (2 s warm-up + 5 s measured).
  'closed-loop': { env: 'loopback', scenarios: 'closed-loop', repeats: 1 },
  // Runs of 8 s: at 20 req/s a 3 s run is 60 requests, and CPU time comes in 10 ms ticks.
  stream: { env: 'loopback', scenarios: 'stream,echo', echoSizes: '64', duration: '8s' },
  smoke: {
    env: 'loopback',
    intermediates: '1',
    isKinds: 'odb',
    sizes: '1KiB,1MiB',
    rates: '100',
    repeats: 1,
    duration: '600ms',
    warmup: '200ms',
    saturationSizes: '1MiB',
    // The smoke run checks that the search runs and reports, not where it ends: two steps.
    saturationMaxRate: 150,
    sloP99: '200ms',
    quotas: '',
    echoSizes: '64',
    streamSizes: '1MiB',
    streamRates: '30',
    streamWarmup: '300ms',
  },
};
