/** Options of `npm run bench`, and the profiles that preset them. */
import { z } from 'zod';
import { defineOptions, optionTypes } from '../src/cli/options.js';
import { parseSize } from '../src/core/units.js';

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
      'preset: full (the published run), smoke (seconds, loopback) or stream (stream mode only)',
    schema: z.enum(['full', 'smoke', 'stream']),
    default: 'full',
  },
  scenarios: {
    flag: '--scenarios <list>',
    description: 'what to run: matrix, saturation, quota, echo, stream',
    schema: list(oneOf(['matrix', 'saturation', 'quota', 'echo', 'stream'] as const)),
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
export const profiles: Record<'full' | 'smoke' | 'stream', Record<string, unknown>> = {
  full: {},
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
    sloP99: '200ms',
    quotas: '',
    echoSizes: '64',
    streamSizes: '1MiB',
    streamRates: '30',
    streamWarmup: '300ms',
  },
};
