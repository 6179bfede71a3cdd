/**
 * What should a captured response do with its connection once the descriptor head is out?
 * Compares, on a chain FE → IS → BE of real processes, the capture detaching the response from
 * the connection (what ships) with closing the connection (`Connection: close` on the head, the
 * capture's fallback, forced here by preloading bench/captured-connection-close.js into the BE).
 *
 *   node dist/bench/captured-connection.js [--intermediate odb|nginx] [--rounds 5] [--seconds 10]
 *                                          [--rate 120] [--concurrency 16]
 *
 * The load mixes three 4 KiB bodies (`/bytes`, sent real) with one 1 MiB chunked body written by
 * an ordinary handler (`/chunked`, captured as an open payload). Figures per variant, median of
 * the rounds: CPU µs per request of each tier at a fixed rate (open loop), requests/s of a closed
 * loop, p50/p99 latency, and how long a request waits when it follows, on the same IS→BE
 * connection, an open response whose client reads nothing. See docs/architecture.md.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { writeNewKeyFile } from '../src/core/keys/key-file-writer.js';
import { startNginx } from '../dev/harness/nginx.js';
import { cpuMicros } from '../src/demo/proc-stat.js';
import type { TierHandle } from '../src/demo/tier-handle.js';
import { startOdbProcess } from '../src/demo/tier-process.js';
import { syntheticSha256 } from '../src/store/payloads/synthetic.js';
import { formatSpread, spread } from './stats.js';

type Variant = 'detach' | 'close';

const { values } = parseArgs({
  options: {
    intermediate: { type: 'string', default: 'odb' },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '120' },
    concurrency: { type: 'string', default: '16' },
  },
});
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const concurrency = Number(values.concurrency);
const closePreload = fileURLToPath(new URL('./captured-connection-close.js', import.meta.url));

interface Chain {
  readonly url: string;
  readonly tiers: Record<'fe' | 'is' | 'be', TierHandle>;
  stop(): Promise<void>;
}

async function startChain(variant: Variant, dir: string, keyFile: string): Promise<Chain> {
  const common = ['--listen', '127.0.0.1:0', '--log-level', 'warn'];
  const env =
    variant === 'close'
      ? {
          ...process.env,
          NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${closePreload}`,
        }
      : process.env;
  const started: TierHandle[] = [];
  try {
    const be = await startOdbProcess(
      'be',
      ['be', '--store-listen', '127.0.0.1:0', '--root', dir, '--key-file', keyFile, ...common],
      { env },
    );
    started.push(be);
    const is =
      values.intermediate === 'nginx'
        ? await startNginx({ upstreams: [be.addresses.http!] })
        : await startOdbProcess('is', [
            'is',
            '--upstream',
            `http://${be.addresses.http}`,
            ...common,
          ]);
    started.push(is);
    const fe = await startOdbProcess('fe', [
      'fe',
      '--upstream',
      `http://${is.addresses.http}`,
      '--key-file',
      keyFile,
      ...common,
    ]);
    started.push(fe);
    return {
      url: `http://${fe.addresses.http}`,
      tiers: { fe, is, be },
      stop: async () => void (await Promise.all(started.map((t) => t.stop()))),
    };
  } catch (err) {
    await Promise.all(started.map((t) => t.stop()));
    throw err;
  }
}

const expected = new Map<string, string>();
function sha(seed: number, size: number): string {
  const key = `${seed}/${size}`;
  if (!expected.has(key)) expected.set(key, syntheticSha256(seed, 0, size));
  return expected.get(key)!;
}

/** Request `i` of the mix. */
function mix(i: number): { path: string; seed: number; size: number; big: boolean } {
  const seed = i % 5;
  return i % 4 === 0
    ? { path: `/chunked/1048576?seed=${seed}`, seed, size: 1048576, big: true }
    : { path: `/bytes/4096?seed=${seed}`, seed, size: 4096, big: false };
}

interface LoadResult {
  requests: number;
  errors: number;
  perSecond: number;
  cpuPerRequest: Record<string, number>;
  latency: { small: number[]; big: number[] };
}

/** Runs the mix for `seconds` after a 2 s warm-up: open loop at `rate`, or closed loop (rate 0). */
async function load(chain: Chain, openRate: number): Promise<LoadResult> {
  const pool = new Pool(chain.url, { connections: concurrency });
  const latency = { small: [] as number[], big: [] as number[] };
  let measuring = false;
  let stopped = false;
  let requests = 0;
  let errors = 0;
  let next = 0;
  const one = async (): Promise<void> => {
    const { path, seed, size, big } = mix(next++);
    const started = performance.now();
    try {
      const { statusCode, body } = await pool.request({ path, method: 'GET' });
      const hash = createHash('sha256');
      for await (const chunk of body) hash.update(chunk as Buffer);
      if (statusCode !== 200 || hash.digest('hex') !== sha(seed, size)) errors++;
    } catch {
      errors++;
    }
    if (!measuring) return;
    requests++;
    (big ? latency.big : latency.small).push(performance.now() - started);
  };
  const running: Promise<void>[] = [];
  if (openRate > 0) {
    const begin = performance.now();
    let sent = 0;
    const inFlight = new Set<Promise<void>>();
    running.push(
      new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          const due = Math.floor(((performance.now() - begin) / 1000) * openRate);
          for (; !stopped && sent < due; sent++) {
            const p = one();
            inFlight.add(p);
            void p.finally(() => inFlight.delete(p));
          }
          if (stopped) {
            clearInterval(timer);
            void Promise.all(inFlight).then(() => resolve());
          }
        }, 2);
      }),
    );
  } else {
    for (let i = 0; i < concurrency; i++) {
      running.push(
        (async () => {
          while (!stopped) await one();
        })(),
      );
    }
  }
  await new Promise((r) => setTimeout(r, 2000));
  const pids = Object.entries(chain.tiers).map(([name, tier]) => [name, tier.pids()] as const);
  const cpu = (): Record<string, number> =>
    Object.fromEntries(
      pids.map(([name, list]) => [name, list.reduce((n, p) => n + cpuMicros(p), 0)]),
    );
  const before = cpu();
  const begin = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - begin) / 1000;
  const after = cpu();
  stopped = true;
  await Promise.all(running);
  await pool.close();
  const cpuPerRequest = Object.fromEntries(
    Object.keys(after).map((name) => [name, (after[name]! - before[name]!) / requests]),
  );
  return { requests, errors, perSecond: requests / elapsed, cpuPerRequest, latency };
}

/** How long a request waits behind an open response whose client reads nothing (capped at 10 s). */
async function waitBehindPausedReader(chain: Chain): Promise<number> {
  const pool = new Pool(chain.url, { connections: 1 });
  const paused = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${chain.url}/chunked/${64 * 1024 * 1024}`, { agent: false }, (res) => {
      res.pause();
      resolve(res);
    });
    req.on('error', reject);
    req.end();
  });
  await new Promise((r) => setTimeout(r, 500));
  const started = performance.now();
  const answered = pool.request({ path: '/bytes/1000', method: 'GET' }).then(async ({ body }) => {
    for await (const _chunk of body);
  });
  const waited = await Promise.race([
    answered.then(() => performance.now() - started),
    new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 10_000)),
  ]);
  paused.destroy();
  await answered.catch(() => {});
  await pool.close();
  return waited;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

interface RoundFigures {
  cpu: Record<string, number>;
  perSecond: number;
  smallP50: number;
  smallP99: number;
  bigP99: number;
  waitMs: number;
  errors: number;
}

async function round(variant: Variant, dir: string, keyFile: string): Promise<RoundFigures> {
  const chain = await startChain(variant, dir, keyFile);
  try {
    const fixed = await load(chain, rate);
    const closed = await load(chain, 0);
    const waitMs = await waitBehindPausedReader(chain);
    const figures = {
      cpu: fixed.cpuPerRequest,
      perSecond: closed.perSecond,
      smallP50: percentile(fixed.latency.small, 0.5),
      smallP99: percentile(fixed.latency.small, 0.99),
      bigP99: percentile(fixed.latency.big, 0.99),
      waitMs,
      errors: fixed.errors + closed.errors,
    };
    console.log(JSON.stringify({ variant, intermediate: values.intermediate, ...figures }));
    return figures;
  } finally {
    await chain.stop();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'odb-captured-connection-'));
const keyFile = join(dir, 'cluster.key');
writeNewKeyFile(keyFile);
const results: Record<Variant, RoundFigures[]> = { detach: [], close: [] };
try {
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const variant of ['detach', 'close'] as const) {
      results[variant].push(await round(variant, dir, keyFile));
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const cell = (variant: Variant, pick: (f: RoundFigures) => number, decimals = 0): string =>
  formatSpread(spread(results[variant].map(pick)), decimals);
console.log(
  `\nintermediate ${values.intermediate}; CPU at ${rate} req/s; closed loop of ${concurrency}`,
);
console.log(
  '| | FE µs/req | IS µs/req | BE µs/req | req/s closed loop | p50 / p99 4 KiB ms | p99 1 MiB ms | wait behind a paused reader, ms | errors |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const variant of ['detach', 'close'] as const) {
  console.log(
    `| ${variant} | ${cell(variant, (f) => f.cpu.fe!)} | ${cell(variant, (f) => f.cpu.is!)} | ` +
      `${cell(variant, (f) => f.cpu.be!)} | ${cell(variant, (f) => f.perSecond)} | ` +
      `${cell(variant, (f) => f.smallP50, 1)} / ${cell(variant, (f) => f.smallP99, 1)} | ` +
      `${cell(variant, (f) => f.bigP99, 1)} | ${cell(variant, (f) => f.waitMs)} | ` +
      `${results[variant].reduce((n, f) => n + f.errors, 0)} |`,
  );
}
