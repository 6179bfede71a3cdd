/**
 * Closed-loop saturation, ODB's chains beside stock ones (`--scenarios closed-loop`): wrk keeps
 * a few connections busy (each sends its next request when the previous response ended), so
 * every chain runs as fast as this machine lets it, and CPU per request is compared at each
 * chain's own saturation. The chains, FE → IS → BE, serve the same files from disk:
 *
 * 1. `vanilla`: odb fe → odb is → odb be, `--mode vanilla` (a plain Node relay);
 * 2. `odb`: the same in header mode, native kernel paths on (sendfile in the store, splice in the
 *    front end);
 * 3. `odb-js`: header mode with `ODB_NATIVE=off` in every tier (JavaScript copies the bodies);
 * 4. `odb-haproxy`: odb fe → HAProxy (splicing) → odb be, header mode;
 * 5. `nginx-haproxy-nginx`: nginx FE (stock proxy defaults) → HAProxy (splicing) → nginx BE
 *    (sendfile);
 * 6. `haproxy-haproxy-nginx`: HAProxy FE → HAProxy IS (both splicing) → nginx BE (sendfile), the
 *    leanest stock chain;
 * 7. `stream-plain`: plain Node programs (test/fixtures/stream: a `node:http` file server as BE,
 *    `http-proxy` as IS and as FE), as they are;
 * 8. `stream`: the same programs under `--import odb/register` (stream mode).
 *
 * Each cell (chain × size): one curl through the chain whose SHA-256 must match the file's (a
 * cell that fails is not measured, and the run fails), a warm-up run of wrk, then measured runs.
 * CPU per request: user + system time from /proc of every process and thread of each tier over
 * the measured run only, over the requests wrk completed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChain } from '../dev/harness/chain.js';
import { startStockChain } from '../dev/harness/stock-chain.js';
import { startStreamPrograms, type StreamPrograms } from '../dev/harness/stream-chain.js';
import { StoreClient } from '../src/store/client.js';
import { formatBytes } from '../src/core/units.js';
import { metricValue, scrape } from '../src/demo/prometheus.js';
import { tierCpuMicros } from '../src/demo/proc-stat.js';
import type { TierHandle } from '../src/demo/tier-handle.js';
import type { OdbProcess } from '../src/demo/tier-process.js';
import { spread, type Spread } from './stats.js';
import { runWrk, socketErrors, writeWrkScript, type WrkResult, type WrkSettings } from './wrk.js';

/** The chains of the scenario, in the order they run and are reported. */
export const closedLoopChains = [
  'vanilla',
  'odb',
  'odb-js',
  'odb-haproxy',
  'nginx-haproxy-nginx',
  'haproxy-haproxy-nginx',
  'stream-plain',
  'stream',
] as const;

export type ClosedLoopChainName = (typeof closedLoopChains)[number];

/** What runs as each tier of a chain, and how the report names the chain. */
export interface ClosedLoopChainInfo {
  readonly label: string;
  readonly tiers: { readonly fe: string; readonly is1: string; readonly be: string };
}

export const closedLoopChainInfo: Readonly<Record<ClosedLoopChainName, ClosedLoopChainInfo>> = {
  vanilla: {
    label: 'odb → odb → odb, vanilla',
    tiers: { fe: 'odb fe', is1: 'odb is', be: 'odb be' },
  },
  odb: {
    label: 'odb → odb → odb, header mode (native)',
    tiers: { fe: 'odb fe', is1: 'odb is', be: 'odb be' },
  },
  'odb-js': {
    label: 'odb → odb → odb, header mode, ODB_NATIVE=off',
    tiers: { fe: 'odb fe', is1: 'odb is', be: 'odb be' },
  },
  'odb-haproxy': {
    label: 'odb → HAProxy → odb, header mode (native)',
    tiers: { fe: 'odb fe', is1: 'HAProxy (splice)', be: 'odb be' },
  },
  'nginx-haproxy-nginx': {
    label: 'nginx → HAProxy → nginx',
    tiers: { fe: 'nginx (proxy defaults)', is1: 'HAProxy (splice)', be: 'nginx (sendfile)' },
  },
  'haproxy-haproxy-nginx': {
    label: 'HAProxy → HAProxy → nginx (leanest stock)',
    tiers: { fe: 'HAProxy (splice)', is1: 'HAProxy (splice)', be: 'nginx (sendfile)' },
  },
  'stream-plain': {
    label: 'http-proxy → http-proxy → Node file server, plain',
    tiers: { fe: 'http-proxy', is1: 'http-proxy', be: 'node:http files' },
  },
  stream: {
    label: 'the same under --import odb/register (stream mode)',
    tiers: { fe: 'http-proxy + odb', is1: 'http-proxy + odb', be: 'node:http files + odb' },
  },
};

/** The tiers of every chain, BE first. */
export const closedLoopTiers = ['be', 'is1', 'fe'] as const;

/** The byte check of a cell: one response through the chain against the file. */
export interface ClosedLoopCheck {
  readonly ok: boolean;
  readonly expectedSha256: string;
  readonly sha256?: string;
  readonly bytes?: number;
  /** Why the check failed (curl's error, or the digests that differ). */
  readonly error?: string;
}

/** One measured wrk run of a cell. */
export interface ClosedLoopRun {
  readonly wrk: WrkResult;
  /** CPU µs per completed request, by tier (`be`, `is1`, `fe`). */
  readonly cpuUsPerRequest: Readonly<Record<string, number>>;
  /** wrk's own CPU µs per request (the load generator shares the machine). */
  readonly clientCpuUsPerRequest: number;
  /** ODB counters per request over the run (empty for stock chains); see {@link odbCounters}. */
  readonly countersPerRequest: Readonly<Record<string, number>>;
  /**
   * CPU the rest of the machine used over the run (all CPUs' busy time from /proc/stat minus the
   * tiers' and wrk's), as a share of one CPU: other work competing with the chain. The machine's
   * figure is sampled at each tick, the processes' is exact: about ±10 % is noise.
   */
  readonly otherCpuShare: number;
  /**
   * Time the hypervisor gave this machine's CPUs to others (steal), as a share of one CPU. With
   * paravirtual steal accounting (CONFIG_PARAVIRT_TIME_ACCOUNTING) no process is charged for it.
   */
  readonly stealShare: number;
  /** Wall time of the measured run, µs. */
  readonly wallUs: number;
  /** False when the chain was still busy 10 s after the previous wrk run (waitForQuiet). */
  readonly startedIdle: boolean;
  /** False when other work kept the machine busy for as long as the run waited (--quiet-wait). */
  readonly startedQuiet: boolean;
  /** 1, or more when earlier runs were discarded because other work used the CPUs meanwhile. */
  readonly attempts: number;
}

/** Medians of a cell's runs. */
export interface ClosedLoopSummary {
  readonly requestsPerSecond: Spread;
  readonly latencyUs: { readonly p50: Spread; readonly p90: Spread; readonly p99: Spread };
  readonly cpuUsPerRequest: Readonly<Record<string, Spread>>;
  /** The sum of the tiers' CPU per request, per run. */
  readonly chainCpuUsPerRequest: Spread;
  readonly clientCpuUsPerRequest: Spread;
  /** See {@link ClosedLoopRun.otherCpuShare}. */
  readonly otherCpuShare: Spread;
  readonly stealShare: Spread;
  readonly bytesPerResponse: Spread;
  /** Over all runs. */
  readonly requests: number;
  readonly socketErrors: number;
  readonly statusErrors: number;
  readonly countersPerRequest: Readonly<Record<string, Spread>>;
}

/** One chain × size. */
export interface ClosedLoopEntry {
  readonly chain: ClosedLoopChainName;
  readonly label: string;
  readonly tiers: ClosedLoopChainInfo['tiers'];
  readonly size: number;
  /** The machine's 1-minute load average when the cell started (other work competes for CPUs). */
  readonly loadAverage?: number;
  readonly check: ClosedLoopCheck;
  /** Empty when the check failed. */
  readonly runs: readonly ClosedLoopRun[];
  readonly summary?: ClosedLoopSummary;
}

/** What the scenario needs to know. */
export interface ClosedLoopOptions {
  readonly chains: readonly ClosedLoopChainName[];
  readonly sizes: readonly number[];
  readonly repeats: number;
  readonly wrk: Omit<WrkSettings, 'durationS'>;
  readonly durationS: number;
  /** 0: no warm-up run. */
  readonly warmupS: number;
  /**
   * A run during which other work (the rest of the machine, and the host as steal) used more than
   * this share of one CPU is measured
   * again, up to 3 times in all (the last is kept, and its other CPU reported).
   */
  readonly maxOtherCpu: number;
  /** Longest wait before a run for the rest of the machine to be quiet (ms; 0: none). */
  readonly quietWaitMs: number;
  /** Threshold of the odb back end in header mode. */
  readonly threshold: number;
  readonly keyFile: string;
  /** Announces each cell (progress). */
  readonly onCell?: (label: string) => void;
}

/** A running chain the scenario measures. */
interface RunningChain {
  readonly processes: readonly TierHandle[];
  url(path: string): string;
  stop(): Promise<void>;
  /** Cumulative ODB counters (undefined for stock chains). */
  counters?(): Promise<Record<string, number>>;
}

/** The file of each size, under `dir`: random bytes, readable by nginx's workers. */
export interface PayloadFile {
  readonly size: number;
  readonly path: string;
  readonly sha256: string;
}

function writePayloadFiles(dir: string, sizes: readonly number[]): PayloadFile[] {
  return sizes.map((size) => {
    const bytes = randomFillSync(Buffer.allocUnsafe(size));
    const path = `/${size}.bin`;
    writeFileSync(join(dir, path), bytes, { mode: 0o644 });
    return { size, path, sha256: createHash('sha256').update(bytes).digest('hex') };
  });
}

/**
 * The header-mode counters, cumulative: descriptor responses the FE delivered, and who moved the
 * bytes (FE: splice or JavaScript; BE store: sendfile or JavaScript).
 */
async function odbCounters(fe: OdbProcess, be: OdbProcess): Promise<Record<string, number>> {
  const [f, b] = await Promise.all([scrape(fe.addresses.metrics!), scrape(be.addresses.metrics!)]);
  return {
    shortcuts: metricValue(f, 'odb_descriptor_responses_total'),
    feKernel: metricValue(f, 'odb_deliveries_total', { path: 'kernel' }),
    feJavascript: metricValue(f, 'odb_deliveries_total', { path: 'javascript' }),
    beKernel: metricValue(b, 'odb_store_sends_total', { path: 'kernel' }),
    beJavascript: metricValue(b, 'odb_store_sends_total', { path: 'javascript' }),
  };
}

/**
 * Stream mode's counters, cumulative: the store requests the FE's splices took (as
 * `shortcuts`), and the FE's lazy-buffer runs written by the kernel or fetched first.
 */
async function streamCounters(
  c: StreamPrograms,
  client: StoreClient,
): Promise<Record<string, number>> {
  const writes = (await client.ping(c.feStore)).plainWrites;
  const fetched = Object.values(writes?.fetched ?? {}).reduce((a, b) => a + b, 0);
  return {
    shortcuts: writes?.kernelRequests ?? 0,
    feKernel: writes?.kernel ?? 0,
    feJavascript: fetched,
  };
}

async function startNamedChain(
  name: ClosedLoopChainName,
  root: string,
  o: ClosedLoopOptions,
): Promise<RunningChain> {
  if (name === 'stream' || name === 'stream-plain') {
    const c = await startStreamPrograms({
      odb: name === 'stream',
      keyFile: o.keyFile,
      filesDir: root,
      isProgram: 'is-proxy.mjs',
      logLevel: 'warn',
    });
    const client = new StoreClient();
    return {
      processes: [c.be, c.is, c.fe],
      url: (path) => c.url(path),
      stop: async () => {
        await c.stop();
        await client.close();
      },
      counters: name === 'stream' ? () => streamCounters(c, client) : undefined,
    };
  }
  if (name === 'nginx-haproxy-nginx' || name === 'haproxy-haproxy-nginx') {
    return startStockChain({
      root,
      frontEnd: name === 'nginx-haproxy-nginx' ? 'nginx' : 'haproxy',
    });
  }
  const chain = await startChain({
    mode: name === 'vanilla' ? 'vanilla' : 'odb',
    root,
    keyFile: o.keyFile,
    intermediates: 1,
    intermediateKind: name === 'odb-haproxy' ? 'haproxy' : 'odb',
    haproxySplice: 'forced',
    beArgs: ['--threshold', String(o.threshold)],
    logLevel: 'warn',
    env: name === 'odb-js' ? { ...process.env, ODB_NATIVE: 'off' } : undefined,
  });
  return {
    processes: chain.processes,
    url: (path) => chain.url(path),
    stop: () => chain.stop(),
    counters: () => odbCounters(chain.fe, chain.be),
  };
}

/** Fetches `url` once with curl and compares its body with the file. */
export function checkBytes(url: string, file: PayloadFile): Promise<ClosedLoopCheck> {
  return new Promise((resolve) => {
    const child = spawn('curl', ['-sS', '--fail', '--max-time', '60', '-o', '-', url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const hash = createHash('sha256');
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.once('error', (err) =>
      resolve({ ok: false, expectedSha256: file.sha256, error: `curl: ${err.message}` }),
    );
    child.once('close', (code) => {
      const sha256 = hash.digest('hex');
      if (code !== 0) {
        resolve({
          ok: false,
          expectedSha256: file.sha256,
          sha256,
          bytes,
          error: `curl exited with ${code}: ${stderr.trim()}`,
        });
        return;
      }
      const ok = sha256 === file.sha256 && bytes === file.size;
      resolve({
        ok,
        expectedSha256: file.sha256,
        sha256,
        bytes,
        ...(ok
          ? {}
          : { error: `got ${bytes} B with SHA-256 ${sha256}, the file has ${file.size} B` }),
      });
    });
  });
}

let ticksPerSecond: number | undefined;

function ticksToMicros(ticks: number): number {
  ticksPerSecond ??=
    Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return (ticks * 1e6) / ticksPerSecond;
}

/** CPU µs this process's waited-for children used so far (cutime + cstime): wrk, once reaped. */
function childrenCpuMicros(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ticksToMicros(Number(fields[13]) + Number(fields[14]));
}

/** CPU µs of the whole machine so far, all CPUs: busy (user, nice, system, irq, softirq), steal. */
function machineMicros(): { busy: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return {
    busy: ticksToMicros(user! + nice! + system! + irq! + softirq!),
    steal: ticksToMicros(steal ?? 0),
  };
}

async function measureOnce(
  chain: RunningChain,
  url: string,
  script: string,
  settings: WrkSettings,
): Promise<Omit<ClosedLoopRun, 'startedIdle' | 'startedQuiet' | 'attempts'>> {
  // Before and after: the counters' scrapes cost the tiers CPU outside the window.
  const countersBefore = (await chain.counters?.()) ?? {};
  const machineBefore = machineMicros();
  const cpuBefore = chain.processes.map(tierCpuMicros);
  const clientBefore = childrenCpuMicros();
  const start = performance.now();
  const wrk = await runWrk(url, script, settings);
  const wallUs = (performance.now() - start) * 1000;
  const cpuAfter = chain.processes.map(tierCpuMicros);
  const clientAfter = childrenCpuMicros();
  const machineAfter = machineMicros();
  const countersAfter = (await chain.counters?.()) ?? {};
  const requests = Math.max(1, wrk.requests);
  const cpuUsPerRequest: Record<string, number> = {};
  chain.processes.forEach((tier, i) => {
    cpuUsPerRequest[tier.name] = (cpuAfter[i]! - cpuBefore[i]!) / requests;
  });
  const countersPerRequest = Object.fromEntries(
    Object.keys(countersAfter).map((k) => [
      k,
      (countersAfter[k]! - (countersBefore[k] ?? 0)) / requests,
    ]),
  );
  const ours =
    cpuAfter.reduce((a, b) => a + b, 0) -
    cpuBefore.reduce((a, b) => a + b, 0) +
    (clientAfter - clientBefore);
  return {
    wrk,
    cpuUsPerRequest,
    clientCpuUsPerRequest: (clientAfter - clientBefore) / requests,
    countersPerRequest,
    otherCpuShare: (machineAfter.busy - machineBefore.busy - ours) / wallUs,
    stealShare: (machineAfter.steal - machineBefore.steal) / wallUs,
    wallUs,
  };
}

/** Medians of a cell's runs. */
export function summariseClosedLoop(runs: readonly ClosedLoopRun[]): ClosedLoopSummary {
  const pick = (f: (r: ClosedLoopRun) => number): Spread => spread(runs.map(f));
  const tiers = Object.keys(runs[0]?.cpuUsPerRequest ?? {});
  return {
    requestsPerSecond: pick((r) => r.wrk.requestsPerSecond),
    latencyUs: {
      p50: pick((r) => r.wrk.latencyUs.p50),
      p90: pick((r) => r.wrk.latencyUs.p90),
      p99: pick((r) => r.wrk.latencyUs.p99),
    },
    cpuUsPerRequest: Object.fromEntries(tiers.map((t) => [t, pick((r) => r.cpuUsPerRequest[t]!)])),
    chainCpuUsPerRequest: pick((r) => Object.values(r.cpuUsPerRequest).reduce((a, b) => a + b, 0)),
    clientCpuUsPerRequest: pick((r) => r.clientCpuUsPerRequest),
    otherCpuShare: pick((r) => r.otherCpuShare),
    stealShare: pick((r) => r.stealShare),
    bytesPerResponse: pick((r) => r.wrk.bytes / Math.max(1, r.wrk.requests)),
    requests: runs.reduce((n, r) => n + r.wrk.requests, 0),
    socketErrors: runs.reduce((n, r) => n + socketErrors(r.wrk), 0),
    statusErrors: runs.reduce((n, r) => n + r.wrk.statusErrors, 0),
    countersPerRequest: Object.fromEntries(
      Object.keys(runs[0]?.countersPerRequest ?? {}).map((k) => [
        k,
        pick((r) => r.countersPerRequest[k] ?? NaN),
      ]),
    ),
  };
}

/** Steps (cells) and seconds the scenario takes, for the progress estimate. */
export function planClosedLoop(o: Omit<ClosedLoopOptions, 'keyFile'>): {
  steps: number;
  seconds: number;
} {
  const cells = o.chains.length * o.sizes.length;
  return {
    steps: cells,
    seconds: o.chains.length * 2 + cells * (o.warmupS + o.repeats * (o.durationS + 0.6) + 0.5),
  };
}

/** The CPU other work took during a run, as a share of one CPU: on this machine, and stolen. */
export function contention(run: Pick<ClosedLoopRun, 'otherCpuShare' | 'stealShare'>): number {
  return Math.max(0, run.otherCpuShare) + run.stealShare;
}

/** Runs of a cell's repeat at most (see ClosedLoopOptions.maxOtherCpu). */
const maxAttempts = 3;
/** Longest wait for the chain to finish the previous run's leftover requests. */
const chainIdleWaitMs = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** How the wait before a run ended. */
export interface QuietStart {
  /** The chain's tiers had finished the previous run's leftover requests. */
  readonly chainIdle: boolean;
  /** Nothing else on the machine was busy. */
  readonly machineQuiet: boolean;
  readonly waitedMs: number;
}

/**
 * Waits until the chain is idle (two consecutive 200 ms windows in which its tiers together used
 * at most 20 ms of CPU, two clock ticks; at most 10 s) and the rest of the machine quiet (two
 * windows in which it used at most 40 ms, 20 % of one CPU; at most `machineWaitMs`). wrk leaves up
 * to one request per connection unfinished when it stops: a measured window opens only once the
 * chain is done with them, so their work is not charged to the next run's requests.
 */
export async function waitForQuiet(
  processes: readonly TierHandle[],
  machineWaitMs: number,
): Promise<QuietStart> {
  const chainCpu = (): number => processes.reduce((sum, p) => sum + tierCpuMicros(p), 0);
  const started = Date.now();
  let idleWindows = 0;
  let quietWindows = 0;
  let last = { chain: chainCpu(), machine: machineMicros().busy };
  for (;;) {
    const elapsed = Date.now() - started;
    const chainDone = idleWindows >= 2 || elapsed >= chainIdleWaitMs;
    const machineDone = quietWindows >= 2 || elapsed >= machineWaitMs;
    if (chainDone && machineDone) break;
    await sleep(200);
    const now = { chain: chainCpu(), machine: machineMicros().busy };
    const chain = now.chain - last.chain;
    idleWindows = chain <= 20_000 ? idleWindows + 1 : 0;
    quietWindows = now.machine - last.machine - chain <= 40_000 ? quietWindows + 1 : 0;
    last = now;
  }
  return {
    chainIdle: idleWindows >= 2,
    machineQuiet: quietWindows >= 2,
    waitedMs: Date.now() - started,
  };
}

/** What a run of the scenario has started and must stop if the harness is interrupted. */
const live = { chains: new Set<RunningChain>(), dirs: new Set<string>() };

/** Stops the chains of a closed-loop run in progress and removes its files (on a signal). */
export async function stopClosedLoop(): Promise<void> {
  await Promise.all([...live.chains].map((c) => c.stop()));
  live.chains.clear();
  for (const dir of live.dirs) rmSync(dir, { recursive: true, force: true });
  live.dirs.clear();
}

/** Runs every chain × size on loopback; the files live in a temporary directory of their own. */
export async function runClosedLoop(o: ClosedLoopOptions): Promise<ClosedLoopEntry[]> {
  const dir = mkdtempSync(join(tmpdir(), 'odb-closed-loop-'));
  live.dirs.add(dir);
  // nginx's workers run unprivileged: they must reach the files.
  chmodSync(dir, 0o755);
  const root = join(dir, 'files');
  const entries: ClosedLoopEntry[] = [];
  try {
    mkdirSync(root, { mode: 0o755 });
    chmodSync(root, 0o755);
    const files = writePayloadFiles(root, o.sizes);
    const script = writeWrkScript(dir);
    const settings: WrkSettings = { ...o.wrk, durationS: o.durationS };
    for (const name of o.chains) {
      const info = closedLoopChainInfo[name];
      const chain = await startNamedChain(name, root, o);
      live.chains.add(chain);
      try {
        for (const file of files) {
          o.onCell?.(`closed loop: ${info.label}, ${formatBytes(file.size)}`);
          const url = chain.url(file.path);
          const check = await checkBytes(url, file);
          const base = {
            chain: name,
            label: info.label,
            tiers: info.tiers,
            size: file.size,
            loadAverage: loadavg()[0],
          };
          if (!check.ok) {
            process.stderr.write(
              `\n*** BYTE CHECK FAILED: ${info.label}, ${formatBytes(file.size)}: ${check.error} — cell not measured ***\n\n`,
            );
            entries.push({ ...base, check, runs: [] });
            continue;
          }
          if (o.warmupS > 0) await runWrk(url, script, { ...settings, durationS: o.warmupS });
          const runs: ClosedLoopRun[] = [];
          for (let r = 0; r < o.repeats; r++) {
            for (let attempt = 1; ; attempt++) {
              const start = await waitForQuiet(chain.processes, o.quietWaitMs);
              const run: ClosedLoopRun = {
                ...(await measureOnce(chain, url, script, settings)),
                startedIdle: start.chainIdle,
                startedQuiet: start.machineQuiet,
                attempts: attempt,
              };
              if (contention(run) <= o.maxOtherCpu || attempt >= maxAttempts) {
                runs.push(run);
                break;
              }
              process.stderr.write(
                `  other work (steal included) used ${Math.round(100 * contention(run))} % of a CPU during the run: measuring it again (${attempt + 1}/${maxAttempts})\n`,
              );
            }
          }
          entries.push({ ...base, check, runs, summary: summariseClosedLoop(runs) });
        }
      } finally {
        await chain.stop();
        live.chains.delete(chain);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    live.dirs.delete(dir);
  }
  return entries;
}
