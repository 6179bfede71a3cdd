/**
 * `npm run bench -- [options]`: the evaluation harness. Runs the matrix FE–nIS–BE × IS kind ×
 * mode × payload size at fixed request rates (repeated, medians and spreads), the saturation
 * search, the CPU-quota experiment of the thesis (§3.6.4) and the echo scenario; writes
 * results.json, report.md and SVG charts. `--help` lists the options.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { writeNewKeyFile } from '../src/core/keys/key-file-writer.js';
import { addOptions, resolveOptions, type OptionValues } from '../src/cli/options.js';
import { formatBytes } from '../src/core/units.js';
import { startChain, type Chain, type IntermediateKind } from '../dev/harness/chain.js';
import { limitCpu } from '../dev/harness/cgroup.js';
import { renderCharts } from './charts.js';
import {
  planClosedLoop,
  runClosedLoop,
  stopClosedLoop,
  type ClosedLoopOptions,
} from './closed-loop.js';
import { runEcho, type EchoFraming, type EchoRun } from './echo.js';
import { environment, type Environment } from './environment.js';
import { loadOnly, measureRun, measured, type RunFigures } from './measure.js';
import { benchOptions, profiles } from './options.js';
import { Progress } from './progress.js';
import { renderReport } from './report.js';
import { describeRun, summarise, type BenchResults, type Scenario } from './results.js';
import { searchSaturation, type SaturationOptions } from './saturation.js';
import { spread } from './stats.js';
import { startStreamChain, writeStreamFiles, type StreamIsKind } from './stream.js';

type Options = OptionValues<typeof benchOptions>;

interface Topology {
  readonly intermediates: number;
  readonly isKind: IntermediateKind;
}

function topologies(o: Options): Topology[] {
  const out: Topology[] = [];
  if (!o.scenarios.includes('matrix')) return out;
  for (const n of o.intermediates) {
    if (n === 0) out.push({ intermediates: 0, isKind: 'odb' });
    else for (const isKind of o.isKinds) out.push({ intermediates: n, isKind });
  }
  return out;
}

function rateFor(rates: readonly number[], sizeIndex: number): number {
  return rates[Math.min(sizeIndex, rates.length - 1)]!;
}

const streamIsKinds: readonly StreamIsKind[] = ['proxy', 'hash'];
const streamModes = ['vanilla', 'stream'] as const;
const echoFramings: readonly EchoFraming[] = ['plain', 'framed', 'stream'];

/** The closed-loop scenario's settings. */
function closedLoopOptions(o: Options): Omit<ClosedLoopOptions, 'keyFile'> {
  return {
    chains: o.closedChains,
    sizes: o.closedSizes,
    repeats: o.repeats,
    wrk: {
      threads: o.wrkThreads,
      connections: o.wrkConnections,
      timeoutS: o.wrkTimeout / 1000,
    },
    durationS: o.wrkDuration / 1000,
    warmupS: o.wrkWarmup / 1000,
    maxOtherCpu: o.maxOtherCpu,
    quietWaitMs: o.quietWait,
    threshold: o.threshold,
  };
}

/** Seconds each kind of step takes, for the progress estimate. */
function plan(o: Options): { steps: number; seconds: number } {
  const run = (o.duration + o.warmup) / 1000 + 0.5;
  const tops = topologies(o);
  const matrix = tops.length * o.modes.length * o.sizes.length * o.repeats;
  const saturation =
    (o.scenarios.includes('saturation') && o.intermediates.includes(1)
      ? o.saturationSizes.length * o.modes.length
      : 0) + (o.scenarios.includes('quota') ? o.quotas.length * o.modes.length : 0);
  const echo = o.scenarios.includes('echo')
    ? o.echoSizes.length * echoFramings.length * o.repeats
    : 0;
  const streamChains = o.scenarios.includes('stream')
    ? streamIsKinds.length * streamModes.length
    : 0;
  const stream = streamChains * o.streamSizes.length * o.repeats;
  const streamWarmups = streamChains * o.streamSizes.length;
  const chains = tops.length * o.modes.length + saturation + streamChains;
  const closed = o.scenarios.includes('closed-loop')
    ? planClosedLoop(closedLoopOptions(o))
    : { steps: 0, seconds: 0 };
  return {
    steps: matrix + saturation + echo + stream + streamWarmups + closed.steps,
    seconds:
      (matrix + echo + stream) * run +
      saturation * 8 * run +
      chains * 2 +
      (streamWarmups * o.streamWarmup) / 1000 +
      closed.seconds,
  };
}

async function withChain<T>(
  env: Environment,
  work: { root: string; keyFile: string },
  o: Options,
  topology: Topology,
  mode: 'vanilla' | 'odb',
  use: (chain: Chain) => Promise<T>,
): Promise<T> {
  const chain = await startChain({
    mode,
    root: work.root,
    keyFile: work.keyFile,
    intermediates: topology.intermediates,
    intermediateKind: topology.isKind,
    place: (role) => env.place(role),
    beArgs: ['--threshold', String(o.threshold)],
    logLevel: 'warn',
  });
  try {
    return await use(chain);
  } finally {
    await chain.stop();
  }
}

async function main(): Promise<void> {
  const command = addOptions(
    new Command('bench').description('ODB evaluation harness'),
    benchOptions,
  );
  command.parse(process.argv);
  const profileName = (command.opts().profile as keyof typeof profiles | undefined) ?? 'full';
  const o = resolveOptions(benchOptions, command, profiles[profileName]);
  const env = environment(o.env);
  const outDir = o.out ?? join('bench', 'out', new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(join(outDir, 'charts'), { recursive: true });
  const work = { root: mkdtempSync(join(tmpdir(), 'odb-bench-')), keyFile: '' };
  work.keyFile = join(work.root, 'cluster.key');
  writeNewKeyFile(work.keyFile);

  const results: BenchResults = {
    meta: describeRun(
      ['npm run bench --', ...process.argv.slice(2)].join(' '),
      env.name,
      env.byteSource,
      { ...o },
    ),
    points: [],
    saturation: [],
    echo: [],
    stream: [],
    closedLoop: [],
  };
  const { steps, seconds } = plan(o);
  const progress = new Progress(steps, seconds);
  const cleanup = async (): Promise<void> => {
    await env.tearDown();
    rmSync(work.root, { recursive: true, force: true });
  };
  // Interrupted (Ctrl-C, or killed by a test's timeout): stop what runs and remove the files.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)
    process.once(
      signal,
      () => void Promise.all([cleanup(), stopClosedLoop()]).finally(() => process.exit(code)),
    );

  await env.setUp();
  try {
    const saturationOptions = (startRate: number): SaturationOptions => ({
      startRate,
      maxRate: o.saturationMaxRate,
      p99BoundUs: o.sloP99 * 1000,
      stepMs: o.duration,
      warmupMs: o.warmup,
      connections: o.connections * 4,
      bisections: 3,
    });

    for (const topology of topologies(o)) {
      for (const mode of o.modes) {
        await withChain(env, work, o, topology, mode, async (chain) => {
          for (const [i, size] of o.sizes.entries()) {
            const scenario: Scenario = {
              ...topology,
              isKind: topology.intermediates === 0 ? 'none' : topology.isKind,
              mode,
              size,
              rate: rateFor(o.rates, i),
            };
            const runs: RunFigures[] = [];
            for (let r = 0; r < o.repeats; r++) {
              progress.step(
                `n=${topology.intermediates} ${scenario.isKind} ${mode} ${formatBytes(size)} run ${r + 1}/${o.repeats}`,
              );
              runs.push(
                await measureRun(env, measured(env, chain), `/bytes/${size}`, {
                  rate: scenario.rate,
                  connections: o.connections,
                  durationMs: o.duration,
                  warmupMs: o.warmup,
                  hashEvery: size >= 256 * 1024 ? 8 : 1,
                }),
              );
            }
            results.points.push({ scenario, runs, summary: summarise(runs) });
          }
          if (
            o.scenarios.includes('saturation') &&
            topology.intermediates === 1 &&
            topology.isKind === 'odb'
          ) {
            for (const size of o.saturationSizes) {
              progress.step(`saturation n=1 ${mode} ${formatBytes(size)}`);
              const result = await searchSaturation(
                env,
                chain,
                `/bytes/${size}`,
                saturationOptions(100),
              );
              results.saturation.push({ intermediates: 1, isKind: 'odb', mode, size, result });
            }
          }
        });
      }
    }

    for (const q of o.scenarios.includes('quota') ? o.quotas : []) {
      for (const mode of o.modes) {
        progress.step(`saturation with ${q.tier} limited to ${q.cpus} CPU, ${mode}`);
        await withChain(env, work, o, { intermediates: 1, isKind: 'odb' }, mode, async (chain) => {
          const tier = chain.processes.find((p) => p.name === q.tier)!;
          const limit = limitCpu(`odb-bench-${q.tier}-${process.pid}`, tier.pids(), q.cpus);
          try {
            const result = await searchSaturation(
              env,
              chain,
              `/bytes/${o.quotaSize}`,
              saturationOptions(100),
            );
            results.saturation.push({
              intermediates: 1,
              isKind: 'odb',
              mode,
              size: o.quotaSize,
              quota: { tier: q.tier, cpus: q.cpus },
              result,
            });
          } finally {
            limit.remove();
          }
        });
      }
    }

    if (o.scenarios.includes('stream')) {
      // The stream programs bind 127.0.0.1 (see stream.ts): so does their load generator.
      const onLoopback = environment('loopback');
      const filesDir = writeStreamFiles(work.root, o.streamSizes);
      for (const isKind of streamIsKinds) {
        for (const mode of streamModes) {
          const chain = await startStreamChain({
            stream: mode === 'stream',
            keyFile: work.keyFile,
            filesDir,
            isKind,
          });
          try {
            // At these rates a fresh process still runs baseline code for seconds; measure both
            // modes once their hot paths are optimised, as in a long-running service.
            for (const size of o.streamSizes) {
              progress.step(`stream: IS ${isKind}, ${mode}, ${formatBytes(size)} JIT warm-up`);
              await loadOnly(onLoopback, chain, `/bytes/${size}`, {
                connections: 8,
                durationMs: o.streamWarmup,
                warmupMs: 0,
                hashEvery: 64,
              });
            }
            for (const [i, size] of o.streamSizes.entries()) {
              const rate = rateFor(o.streamRates, i);
              const runs: RunFigures[] = [];
              for (let r = 0; r < o.repeats; r++) {
                progress.step(
                  `stream: IS ${isKind}, ${mode}, ${formatBytes(size)} run ${r + 1}/${o.repeats}`,
                );
                runs.push(
                  await measureRun(onLoopback, chain, `/bytes/${size}`, {
                    rate,
                    connections: o.connections,
                    durationMs: o.duration,
                    warmupMs: o.warmup,
                    hashEvery: size >= 256 * 1024 ? 8 : 1,
                  }),
                );
              }
              results.stream.push({ isKind, mode, size, rate, runs, summary: summarise(runs) });
            }
          } finally {
            await chain.stop();
          }
        }
      }
    }

    if (o.scenarios.includes('closed-loop')) {
      // On loopback whatever --env says, like the stream scenario: wrk and curl run here.
      results.closedLoop!.push(
        ...(await runClosedLoop({
          ...closedLoopOptions(o),
          keyFile: work.keyFile,
          onCell: (label) => progress.step(label),
        })),
      );
    }

    for (const size of o.scenarios.includes('echo') ? o.echoSizes : []) {
      for (const framing of echoFramings) {
        const runs: EchoRun[] = [];
        for (let r = 0; r < o.repeats; r++) {
          progress.step(`echo ${framing} ${size} B run ${r + 1}/${o.repeats}`);
          runs.push(
            await runEcho(
              env,
              framing,
              size,
              o.echoConnections,
              o.duration,
              o.warmup,
              work.keyFile,
            ),
          );
        }
        results.echo.push({
          framing,
          size,
          runs,
          exchangesPerSecond: spread(runs.map((r) => r.exchangesPerSecond)),
          p95Us: spread(runs.map((r) => r.latencyUs.p95)),
          serverCpuUsPerExchange: spread(runs.map((r) => r.serverCpuUsPerExchange)),
        });
      }
    }
  } finally {
    await cleanup();
  }

  results.meta.finishedAt = new Date().toISOString();
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 1));
  const charts = await renderCharts(results, join(outDir, 'charts'));
  writeFileSync(join(outDir, 'report.md'), renderReport(results, charts));
  progress.done(`wrote ${join(outDir, 'report.md')}, results.json and ${charts.length} charts`);
  if (o.publish) {
    mkdirSync(join(o.publish, 'charts'), { recursive: true });
    for (const f of ['report.md', 'results.json'])
      copyFileSync(join(outDir, f), join(o.publish, f));
    for (const f of readdirSync(join(outDir, 'charts')))
      copyFileSync(join(outDir, 'charts', f), join(o.publish, 'charts', f));
    console.error(`published to ${o.publish}`);
  }
  const failed = (results.closedLoop ?? []).filter((e) => !e.check.ok);
  if (failed.length > 0) {
    console.error(
      `${failed.length} closed-loop cell(s) failed their byte check: ${failed.map((e) => `${e.label} ${formatBytes(e.size)}`).join('; ')}`,
    );
    process.exitCode = 1;
  }
}

await main();
