/** `odb load`: the load generator as its own process (JSON lines on stdout). */
import type { Command } from 'commander';
import { OdbError } from '../core/errors.js';
import { runLoad } from '../loadgen/load.js';
import { defaultSyntheticSeed, syntheticSha256 } from '../store/payloads/synthetic.js';
import { addOptions, defineOptions, optionTypes, resolveOptions } from './options.js';
import { z } from 'zod';

export const loadOptions = defineOptions({
  url: {
    flag: '--url <url>',
    description: 'URL to GET',
    schema: z.url({ protocol: /^http$/ }),
    required: true,
  },
  connections: {
    flag: '--connections <n>',
    description: 'persistent connections (open loop: the most requests in flight at once)',
    schema: optionTypes.count,
    default: 8,
  },
  rate: {
    flag: '--rate <n>',
    description:
      'open loop at n requests/s, latency corrected for coordinated omission (default: closed loop)',
    schema: optionTypes.count,
  },
  duration: {
    flag: '--duration <duration>',
    description: 'measured time',
    schema: optionTypes.duration,
    default: '5s',
  },
  warmup: {
    flag: '--warmup <duration>',
    description: 'unmeasured time first',
    schema: optionTypes.duration,
    default: '1s',
  },
  expectSynthetic: {
    flag: '--expect-synthetic',
    description: 'check bodies against the synthetic payload the URL (/bytes/<n>?seed=s) names',
    schema: optionTypes.flag,
    default: 'false',
  },
  hashEvery: {
    flag: '--hash-every <n>',
    description: 'SHA-256 every n-th response (others: status and length)',
    schema: optionTypes.count,
    default: 1,
  },
});

/** Expected length and hash of a `/bytes/<n>` URL. */
export function syntheticExpectation(url: string): { length: number; sha256: string } {
  const parsed = new URL(url);
  const match = /\/bytes\/(\d+)$/.exec(parsed.pathname);
  if (!match)
    throw new OdbError('ODB_ERR_INVALID_OPTION', '--expect-synthetic needs a /bytes/<n> URL');
  const length = Number(match[1]);
  const seed = Number(parsed.searchParams.get('seed') ?? defaultSyntheticSeed);
  return { length, sha256: syntheticSha256(seed, 0, length) };
}

export function registerLoad(program: Command): void {
  const load = program
    .command('load')
    .description(
      'HTTP load (closed loop, or open loop at --rate) with byte checks; prints JSON lines',
    );
  addOptions(load, loadOptions).action(async () => {
    const o = resolveOptions(loadOptions, load);
    const expect = o.expectSynthetic ? syntheticExpectation(o.url) : undefined;
    const print = (line: object): void => void process.stdout.write(JSON.stringify(line) + '\n');
    const result = await runLoad(
      {
        url: o.url,
        connections: o.connections,
        ratePerSecond: o.rate,
        warmupMs: o.warmup,
        durationMs: o.duration,
        expect,
        hashEvery: o.hashEvery,
      },
      () => print({ event: 'measuring' }),
    );
    print({ event: 'result', ...result });
  });
}
