/** The closed-loop scenario's part of the report: one table per size, and the ratios asked of it. */
import { formatBytes } from '../src/core/units.js';
import {
  contention,
  type ClosedLoopChainName,
  type ClosedLoopEntry,
  type ClosedLoopSummary,
} from './closed-loop.js';
import { formatSpread, ratio, type Spread } from './stats.js';

/** What the method paragraph needs of the run's options (milliseconds, bytes). */
export interface ClosedLoopReportOptions {
  readonly wrkThreads?: number;
  readonly wrkConnections?: number;
  readonly wrkDuration?: number;
  readonly wrkWarmup?: number;
  readonly wrkTimeout?: number;
  readonly repeats?: number;
  readonly threshold?: number;
  readonly maxOtherCpu?: number;
  readonly quietWait?: number;
}

const fmt = (v: number, decimals = 2): string => (Number.isFinite(v) ? v.toFixed(decimals) : 'n/a');
const ms = (s: Spread): string =>
  formatSpread({ ...s, median: s.median / 1000, min: s.min / 1000, max: s.max / 1000 }, 2);

/** A share of one CPU as a percentage (tick rounding can make a small share negative). */
const pctOfCpu = (s: Spread): string =>
  formatSpread({ ...s, median: 100 * s.median, min: 100 * s.min, max: 100 * s.max }, 0) + ' %';

function sizesOf(entries: readonly ClosedLoopEntry[]): number[] {
  return [...new Set(entries.map((e) => e.size))].sort((a, b) => a - b);
}

function cell(
  entries: readonly ClosedLoopEntry[],
  chain: ClosedLoopChainName,
  size: number,
): ClosedLoopSummary | undefined {
  return entries.find((e) => e.chain === chain && e.size === size)?.summary;
}

/** `kernel / (kernel + javascript)` of one side, or a dash when that side moved nothing. */
function kernelShare(s: ClosedLoopSummary, side: 'fe' | 'be'): string {
  const kernel = s.countersPerRequest[`${side}Kernel`]?.median ?? 0;
  const js = s.countersPerRequest[`${side}Javascript`]?.median ?? 0;
  return kernel + js > 0 ? `${Math.round((100 * kernel) / (kernel + js))} %` : '—';
}

function sizeTable(
  entries: readonly ClosedLoopEntry[],
  size: number,
  maxOtherCpu: number,
): string[] {
  const lines = [
    '| chain (FE → IS → BE) | req/s | requests | p50 ms | p99 ms | FE CPU µs/req | IS CPU µs/req | BE CPU µs/req | chain CPU µs/req | wrk CPU µs/req | other CPU / steal | errors: socket / status ≥ 400 | shortcuts/req | kernel path FE / BE | bytes check |',
    `|${'---|'.repeat(15)}`,
  ];
  for (const e of entries.filter((x) => x.size === size)) {
    const s = e.summary;
    if (!s) {
      lines.push(
        `| ${e.label} (\`${e.chain}\`) | ${'not measured | '.repeat(13)}✗ **FAILED**: ${e.check.error ?? 'unknown'} |`,
      );
      continue;
    }
    const cpu = (tier: string): string => formatSpread(s.cpuUsPerRequest[tier]!, 0);
    const odb = s.countersPerRequest.shortcuts !== undefined;
    lines.push(
      `| ${e.label} (\`${e.chain}\`) | ${formatSpread(s.requestsPerSecond)} | ${s.requests} | ${ms(s.latencyUs.p50)} | ${ms(s.latencyUs.p99)} | ` +
        `${cpu('fe')} | ${cpu('is1')} | ${cpu('be')} | **${formatSpread(s.chainCpuUsPerRequest)}** | ${formatSpread(s.clientCpuUsPerRequest)} | ${e.runs.some((r) => contention(r) > maxOtherCpu) ? '⚠ ' : ''}${pctOfCpu(s.otherCpuShare)} / ${pctOfCpu(s.stealShare)} | ` +
        `${s.socketErrors} / ${s.statusErrors} | ${odb ? formatSpread(s.countersPerRequest.shortcuts!, 2) : '—'} | ` +
        `${odb ? `${kernelShare(s, 'fe')} / ${kernelShare(s, 'be')}` : '—'} | ✓ ${formatBytes(e.check.bytes ?? 0)} |`,
    );
  }
  return lines;
}

/** The ratios of the scenario, one row each, a column per size. */
const ratioRows: readonly {
  readonly label: string;
  readonly value: (
    get: (chain: ClosedLoopChainName) => ClosedLoopSummary | undefined,
  ) => number | undefined;
}[] = [
  {
    label: 'whole-chain CPU/req: header mode (native) / vanilla',
    value: (get) => chainRatio(get('odb'), get('vanilla')),
  },
  {
    label: 'whole-chain CPU/req: header mode (native) / leanest stock chain',
    value: (get) => chainRatio(get('odb'), get('haproxy-haproxy-nginx')),
  },
  {
    label: 'whole-chain CPU/req: stream mode / the same programs plain',
    value: (get) => chainRatio(get('stream'), get('stream-plain')),
  },
  {
    label: 'whole-chain CPU/req: header mode, ODB_NATIVE=off / native',
    value: (get) => chainRatio(get('odb-js'), get('odb')),
  },
  {
    label: 'BE CPU/req: odb be (store, native) / nginx BE (sendfile, leanest stock chain)',
    value: (get) => tierRatio(get('odb'), get('haproxy-haproxy-nginx'), 'be'),
  },
  {
    label: 'FE CPU/req: odb fe (native) / HAProxy FE (splice)',
    value: (get) => tierRatio(get('odb'), get('haproxy-haproxy-nginx'), 'fe'),
  },
  {
    label: 'saturation throughput: header mode (native) / vanilla',
    value: (get) => rateRatio(get('odb'), get('vanilla')),
  },
  {
    label: 'saturation throughput: header mode (native) / leanest stock chain',
    value: (get) => rateRatio(get('odb'), get('haproxy-haproxy-nginx')),
  },
];

function chainRatio(a?: ClosedLoopSummary, b?: ClosedLoopSummary): number | undefined {
  return a && b ? ratio(a.chainCpuUsPerRequest.median, b.chainCpuUsPerRequest.median) : undefined;
}

function tierRatio(
  a: ClosedLoopSummary | undefined,
  b: ClosedLoopSummary | undefined,
  tier: string,
) {
  const x = a?.cpuUsPerRequest[tier];
  const y = b?.cpuUsPerRequest[tier];
  return x && y ? ratio(x.median, y.median) : undefined;
}

function rateRatio(a?: ClosedLoopSummary, b?: ClosedLoopSummary): number | undefined {
  return a && b ? ratio(a.requestsPerSecond.median, b.requestsPerSecond.median) : undefined;
}

function ratioTable(entries: readonly ClosedLoopEntry[]): string[] {
  const sizes = sizesOf(entries);
  const rows = ratioRows
    .map((row) => {
      const values = sizes.map((size) => row.value((chain) => cell(entries, chain, size)));
      return values.every((v) => v === undefined)
        ? undefined
        : `| ${row.label} | ${values.map((v) => (v === undefined ? 'n/a' : `**${fmt(v)}**`)).join(' | ')} |`;
    })
    .filter((r): r is string => r !== undefined);
  if (rows.length === 0) return [];
  return [
    `| ratio (below 1: the first uses less, or serves fewer) | ${sizes.map(formatBytes).join(' | ')} |`,
    `|---|${sizes.map(() => '---').join('|')}|`,
    ...rows,
  ];
}

/** Lines for the report's key ratios. */
export function closedLoopKeyRatios(entries: readonly ClosedLoopEntry[]): string[] {
  const lines: string[] = [];
  for (const size of sizesOf(entries)) {
    const get = (chain: ClosedLoopChainName) => cell(entries, chain, size);
    const parts = [
      ['whole-chain CPU/req header mode/vanilla', chainRatio(get('odb'), get('vanilla'))],
      ['header mode/leanest stock chain', chainRatio(get('odb'), get('haproxy-haproxy-nginx'))],
      ['throughput header mode/vanilla', rateRatio(get('odb'), get('vanilla'))],
    ] as const;
    const shown = parts.filter(([, v]) => v !== undefined);
    if (shown.length === 0) continue;
    lines.push(
      `- closed loop, ${formatBytes(size)}: ${shown.map(([label, v]) => `${label} **${fmt(v!)}**`).join(', ')}`,
    );
  }
  const failed = entries.filter((e) => !e.check.ok);
  if (failed.length > 0)
    lines.push(
      `- **${failed.length} closed-loop cell(s) failed the byte check and were not measured**: ${failed.map((e) => `${e.label} ${formatBytes(e.size)}`).join('; ')}`,
    );
  return lines;
}

/** The scenario's section body (empty when the run did not include it). */
export function closedLoopSection(
  entries: readonly ClosedLoopEntry[],
  o: ClosedLoopReportOptions,
): string[] {
  if (entries.length === 0) return [];
  const s = (v: number | undefined): string => (v === undefined ? '?' : String(v / 1000));
  const lines = [
    `Every chain at its own saturation on this machine: \`wrk -t${o.wrkThreads ?? '?'} -c${o.wrkConnections ?? '?'} -d${s(o.wrkDuration)}s --timeout ${s(o.wrkTimeout)}s\`, ` +
      `${o.repeats ?? 1} measured run(s) per cell after ${s(o.wrkWarmup)} s of unmeasured wrk load (figures: medians, [lowest–highest run] when repeated). ` +
      'Closed loop: each connection sends its next request when the previous response ended (HTTP/1.1 keep-alive), so the chain, the load generator and the kernel share the CPUs, and latency is the time a request took at this concurrency. ' +
      `The BE serves files of random bytes from disk (page cache). CPU per request: user + system time from /proc of every process and thread of a tier over the measured run only, divided by the requests wrk completed (a run starts once the chain is idle and, waiting at most ${o.quietWait === undefined ? 'a minute' : `${s(o.quietWait)} s`}, the rest of the machine quiet; the work done for the at most one request per connection still in flight when wrk stops is counted without its completion, so a figure may be high by about connections / (2 × requests), at most connections / requests: see the requests column); \`wrk\`: the load generator's own. ` +
      "On loopback the kernel's receive processing runs in softirq context, charged to whichever process is on the CPU then, usually the sender: the kernel's work for a hop lands on either of its two tiers. " +
      "Before a cell is measured, one response fetched with curl through the chain must have the file's SHA-256 and length. Errors: wrk's socket errors (connect, read, write, timeout) and responses with status ≥ 400. " +
      `Shortcuts/req: descriptor responses the odb FE delivered per request (header mode: the body went from the BE's store to the FE, past the IS; the BE's threshold is ${o.threshold === undefined ? '?' : formatBytes(o.threshold)}); kernel path: the share of those bodies the FE spliced and the store sent with sendfile. Stream mode: shortcuts/req are the store requests the FE's splices took per request (one per payload; the BE sends one payload per body when its reads come no more than ODB_GATHER_WAIT apart), and the kernel path the share of the FE's lazy-buffer writes the kernel spliced.`,
    '',
    'The stock tiers: nginx BE with `sendfile on; tcp_nopush on;`; HAProxy in HTTP mode with `option splice-request` and `option splice-response` (`splice-auto` never spliced on loopback here); nginx FE with its stock proxy defaults (HTTP/1.0 to its upstream, one connection per request, buffering on: bodies beyond its buffers spool to temp files). nginx runs one worker, HAProxy its default threads (one per CPU). No tier writes a per-request log (odb tiers run at log level warn).',
    '',
  ];
  const loads = entries.map((e) => e.loadAverage).filter((l): l is number => l !== undefined);
  if (loads.length > 0)
    lines.push(
      `The machine's 1-minute load average when the cells started: ${fmt(Math.min(...loads))} to ${fmt(Math.max(...loads))} (this run's own included: its tiers and wrk keep both CPUs busy). Other CPU: what the rest of the machine used during a run (busy time of all CPUs from /proc/stat minus the tiers' and wrk's), in % of one CPU: about ±10 % is noise (the machine's time is sampled at each tick, the processes' is exact), more is other work competing with the chain, kernel threads (ksoftirqd) included. Steal: time the hypervisor gave this machine's CPUs to others, in % of one CPU; it slows a run down but, with paravirtual steal accounting, is charged to no process.`,
      '',
    );
  const ratios = ratioTable(entries);
  if (ratios.length > 0) lines.push(...ratios, '');
  const maxOther = o.maxOtherCpu ?? Infinity;
  const runs = entries.flatMap((e) => e.runs);
  const again = runs.reduce((n, r) => n + (r.attempts ?? 1) - 1, 0);
  const contended = runs.filter((r) => contention(r) > maxOther).length;
  if (o.maxOtherCpu !== undefined)
    lines.push(
      `A run during which other work (other CPU + steal) used more than ${Math.round(100 * o.maxOtherCpu)} % of one CPU was measured again (3 tries in all): ${again} run(s) were; ${contended === 0 ? 'no kept run was above it' : `**${contended} kept run(s) still were (⚠)**`}.`,
      '',
    );
  for (const size of sizesOf(entries))
    lines.push(`### ${formatBytes(size)}`, '', ...sizeTable(entries, size, maxOther), '');
  return lines;
}
