/**
 * `odb demo`: BE, IS and FE on loopback, a short load in vanilla and in odb mode per payload size,
 * and a table of what each tier spent. Processes are real and cleaned up on exit.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { startChain, type Chain } from '../demo/chain.js';
import { runLoadProcess } from '../demo/load-process.js';
import { tierCpuMicros } from '../demo/proc-stat.js';
import { metricValue, scrape } from '../demo/prometheus.js';
import type { LoadResult } from '../loadgen/load.js';
import { writeNewKeyFile } from '../core/keys/key-file-writer.js';
import { addOptions, defineOptions, optionTypes, resolveOptions } from './options.js';
import { formatBytes, parseSize } from '../core/units.js';

export const demoOptions = defineOptions({
  sizes: {
    flag: '--sizes <list>',
    description: 'comma-separated payload sizes',
    schema: z.string().transform((s) => s.split(',').map((part) => parseSize(part, '--sizes'))),
    default: '1KiB,64KiB,1MiB',
  },
  duration: {
    flag: '--duration <duration>',
    description: 'measured time per load',
    schema: optionTypes.duration,
    default: '3s',
  },
  warmup: {
    flag: '--warmup <duration>',
    description: 'unmeasured time per point',
    schema: optionTypes.duration,
    default: '1s',
  },
  connections: {
    flag: '--connections <n>',
    description: 'client connections',
    schema: optionTypes.count,
    default: 8,
  },
  rate: {
    flag: '--rate <n>',
    description: 'fixed request rate at which CPU per request is measured',
    schema: optionTypes.count,
    default: 200,
  },
});

/** One measured point of the demo. */
export interface DemoPoint {
  readonly mode: 'vanilla' | 'odb';
  readonly size: number;
  /** Closed loop: saturation throughput and latency. */
  readonly saturation: LoadResult;
  /** Open loop at the fixed rate: the load CPU and bytes are measured under. */
  readonly fixedRate: LoadResult;
  /** CPU µs per request at the fixed rate, by tier name. */
  readonly cpuPerRequest: Readonly<Record<string, number>>;
  /** Bytes the IS received from its upstream per request, at the fixed rate. */
  readonly isBytesPerRequest: number;
}

interface DemoLoad {
  readonly duration: number;
  readonly warmup: number;
  readonly connections: number;
  readonly rate: number;
}

async function measure(
  chain: Chain,
  mode: DemoPoint['mode'],
  size: number,
  o: DemoLoad,
): Promise<DemoPoint> {
  const is = chain.intermediates[0]!;
  const tiers = chain.processes;
  const isUpstreamBytes = async (): Promise<number> =>
    metricValue(await scrape(is.addresses.metrics!), 'odb_socket_bytes_total', {
      peer: 'upstream',
      direction: 'received',
    });
  const common = [
    '--url',
    chain.url(`/bytes/${size}`),
    '--duration',
    `${o.duration}ms`,
    '--warmup',
    `${o.warmup}ms`,
    '--expect-synthetic',
    '--hash-every',
    size >= 256 * 1024 ? '8' : '1',
  ];
  let cpuBefore: number[] = [];
  let bytesBefore = 0;
  const fixedRate = await runLoadProcess(
    [...common, '--rate', String(o.rate), '--connections', String(4 * o.connections)],
    async () => {
      cpuBefore = tiers.map(tierCpuMicros);
      bytesBefore = await isUpstreamBytes();
    },
  );
  const cpuAfter = tiers.map(tierCpuMicros);
  const bytesAfter = await isUpstreamBytes();
  const requests = Math.max(1, fixedRate.requests);
  const cpuPerRequest = Object.fromEntries(
    tiers.map((t, i) => [t.name, (cpuAfter[i]! - cpuBefore[i]!) / requests]),
  );
  const saturation = await runLoadProcess([...common, '--connections', String(o.connections)]);
  return {
    mode,
    size,
    saturation,
    fixedRate,
    cpuPerRequest,
    isBytesPerRequest: (bytesAfter - bytesBefore) / requests,
  };
}

function table(points: readonly DemoPoint[]): string {
  const header = [
    'mode',
    'size',
    'req/s',
    'p50 ms',
    'p99 ms',
    'IS bytes/req',
    'FE µs/req',
    'IS µs/req',
    'BE µs/req',
    'errors',
  ];
  const rows = points.map((p) => [
    p.mode,
    formatBytes(p.size),
    p.saturation.requestsPerSecond.toFixed(0),
    (p.saturation.latencyUs.p50 / 1000).toFixed(2),
    (p.saturation.latencyUs.p99 / 1000).toFixed(2),
    p.isBytesPerRequest.toFixed(0),
    (p.cpuPerRequest.fe ?? 0).toFixed(0),
    (p.cpuPerRequest.is1 ?? 0).toFixed(0),
    (p.cpuPerRequest.be ?? 0).toFixed(0),
    String(p.saturation.errors + p.fixedRate.errors),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function verdicts(points: readonly DemoPoint[]): string[] {
  const at = (mode: DemoPoint['mode'], size: number): DemoPoint | undefined =>
    points.find((p) => p.mode === mode && p.size === size);
  const sizes = [...new Set(points.map((p) => p.size))].sort((a, b) => a - b);
  const smallest = sizes[0]!;
  const largest = sizes.at(-1)!;
  const out: string[] = [];
  const odbLarge = at('odb', largest);
  const odbSmall = at('odb', smallest);
  const vanillaLarge = at('vanilla', largest);
  if (odbLarge && odbSmall) {
    const ratio = (odbLarge.cpuPerRequest.is1 ?? 0) / Math.max(1, odbSmall.cpuPerRequest.is1 ?? 0);
    out.push(
      `IS CPU/request, odb ${formatBytes(largest)} vs odb ${formatBytes(smallest)}: ${ratio.toFixed(2)}x`,
    );
    out.push(
      `IS bytes/request from upstream, odb ${formatBytes(largest)}: ${odbLarge.isBytesPerRequest.toFixed(0)} B`,
    );
  }
  if (odbLarge && vanillaLarge) {
    const rps = odbLarge.saturation.requestsPerSecond / vanillaLarge.saturation.requestsPerSecond;
    out.push(`requests/s at ${formatBytes(largest)}, odb / vanilla: ${rps.toFixed(2)}x`);
    const chain = (p: DemoPoint): number =>
      Object.values(p.cpuPerRequest).reduce((a, b) => a + b, 0);
    out.push(
      `whole-chain CPU/request at ${formatBytes(largest)}, odb / vanilla: ${(chain(odbLarge) / chain(vanillaLarge)).toFixed(2)}x`,
    );
  }
  return out;
}

export function registerDemo(program: Command): void {
  const demo = program
    .command('demo')
    .description(
      'run FE, IS and BE on loopback and compare vanilla and odb modes per payload size',
    );
  addOptions(demo, demoOptions).action(async () => {
    const o = resolveOptions(demoOptions, demo);
    const dir = mkdtempSync(join(tmpdir(), 'odb-demo-'));
    // The key file lies outside the served directory, as it should in production.
    const keyFile = join(dir, 'cluster.key');
    writeNewKeyFile(keyFile);
    const root = join(dir, 'public');
    mkdirSync(root);
    let chain: Chain | undefined;
    const cleanup = async (): Promise<void> => {
      await chain?.stop();
      chain = undefined;
      rmSync(dir, { recursive: true, force: true });
    };
    const interrupted = (): void => void cleanup().finally(() => process.exit(130));
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
    const points: DemoPoint[] = [];
    try {
      for (const mode of ['vanilla', 'odb'] as const) {
        chain = await startChain({ mode, keyFile, root, logLevel: 'warn' });
        for (const size of o.sizes) {
          process.stderr.write(`measuring ${mode} ${formatBytes(size)}…\n`);
          points.push(await measure(chain, mode, size, o));
        }
        await chain.stop();
        chain = undefined;
      }
    } finally {
      await cleanup();
    }
    console.log(
      `FE → IS → BE on loopback. req/s, p50, p99: closed loop, ${o.connections} connections. ` +
        `Bytes and CPU µs per request (kernel accounting, /proc): open loop at ${o.rate} req/s. ` +
        `${o.duration / 1000} s per measurement, one run (npm run bench repeats and takes medians).`,
    );
    console.log(table(points));
    console.log('');
    for (const v of verdicts(points)) console.log(v);
    const missed = points.filter((p) => p.fixedRate.missed > 0);
    for (const p of missed)
      console.log(
        `note: ${p.mode} ${formatBytes(p.size)} could not hold ${o.rate} req/s (${p.fixedRate.missed} requests not sent)`,
      );
    const errors = points.reduce((n, p) => n + p.saturation.errors + p.fixedRate.errors, 0);
    const hashed = points.reduce((n, p) => n + p.saturation.hashed + p.fixedRate.hashed, 0);
    console.log(
      `bytes checked: ${hashed} responses SHA-256-verified, every response length-checked, ${errors} errors`,
    );
    if (errors > 0) process.exitCode = 1;
  });
}
