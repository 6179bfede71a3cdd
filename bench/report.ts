/** The Markdown report of a benchmark run: key ratios, the thesis's tables side by side, all figures. */
import { formatBytes } from '../src/core/units.js';
import type { Chart } from './charts.js';
import {
  closedLoopKeyRatios,
  closedLoopSection,
  type ClosedLoopReportOptions,
} from './closed-loop-report.js';
import type { BenchResults, PointResult, StreamEntry } from './results.js';
import { formatSpread, ratio } from './stats.js';

/** Thesis Table 4.2 (ODB, aligned buffers): share of payload bytes that bypassed the IS. */
const thesisBypass: Readonly<Record<number, string>> = {
  [1024]: '—',
  [3 * 1024]: '0 % (1×4k)',
  [16 * 1024]: '75 % (4×4k)',
  [32 * 1024]: '87.5 % (8×4k)',
  [64 * 1024]: '93.67 % (16×4k)',
  [256 * 1024]: '93.75 % (64×4k)',
  [1024 * 1024]: '93.75 % (≥32×4k)',
};

const fmt = (v: number, decimals = 2): string => (Number.isFinite(v) ? v.toFixed(decimals) : 'n/a');
const pct = (v: number): string => (Number.isFinite(v) ? `${(100 * v).toFixed(1)} %` : 'n/a');

function find(
  results: BenchResults,
  n: number,
  kind: string,
  mode: string,
  size: number,
): PointResult | undefined {
  return results.points.find(
    (p) =>
      p.scenario.intermediates === n &&
      p.scenario.isKind === (n === 0 ? 'none' : kind) &&
      p.scenario.mode === mode &&
      p.scenario.size === size,
  );
}

function chainCpu(p: PointResult | StreamEntry): number {
  return Object.values(p.summary.tiers).reduce((sum, t) => sum + t.cpuUsPerRequest.median, 0);
}

function kinds(results: BenchResults): string[] {
  return [...new Set(results.points.map((p) => p.scenario.isKind).filter((k) => k !== 'none'))];
}

function keyRatios(results: BenchResults): string[] {
  const lines: string[] = [];
  const kind = kinds(results).includes('odb') ? 'odb' : (kinds(results)[0] ?? 'odb');
  const sizes = [...new Set(results.points.map((p) => p.scenario.size))].filter(
    (s) => s === 64 * 1024 || s === 1024 * 1024,
  );
  for (const n of [1, 2, 0]) {
    for (const size of sizes) {
      const v = find(results, n, kind, 'vanilla', size);
      const o = find(results, n, kind, 'odb', size);
      if (!v || !o) continue;
      const where = `FE–${n}IS–BE${n ? ` (${kind} as IS)` : ''}, ${formatBytes(size)} at ${v.scenario.rate} req/s`;
      if (n > 0) {
        lines.push(
          `- ${where}: IS CPU per request odb/vanilla **${fmt(ratio(o.summary.tiers.is1!.cpuUsPerRequest.median, v.summary.tiers.is1!.cpuUsPerRequest.median))}**`,
        );
      }
      lines.push(
        `- ${where}: whole-chain CPU per request odb/vanilla **${fmt(ratio(chainCpu(o), chainCpu(v)))}**`,
      );
      lines.push(
        `- ${where}: p99 odb/vanilla **${fmt(ratio(o.summary.latencyUs.p99.median, v.summary.latencyUs.p99.median))}**`,
      );
    }
  }
  for (const s of results.saturation.filter((e) => e.mode === 'odb')) {
    const v = results.saturation.find(
      (e) => e.mode === 'vanilla' && e.size === s.size && e.quota?.tier === s.quota?.tier,
    );
    if (!v) continue;
    const label = s.quota
      ? `${formatBytes(s.size)} with ${s.quota.tier} limited to ${s.quota.cpus} CPU`
      : formatBytes(s.size);
    lines.push(
      `- saturation throughput (${label}) odb/vanilla **${fmt(ratio(s.result.maxRate, v.result.maxRate))}** (${s.result.maxRate} vs ${v.result.maxRate} req/s)`,
    );
  }
  const plain = results.echo.find((e) => e.framing === 'plain' && e.size === 64);
  for (const framing of ['framed', 'stream'] as const) {
    const framed = results.echo.find((e) => e.framing === framing && e.size === 64);
    if (!plain || !framed) continue;
    lines.push(
      `- echo, 64 B messages: ${framing === 'stream' ? 'stream mode (--import)' : 'ODB framing'}/plain exchanges/s **${fmt(ratio(framed.exchangesPerSecond.median, plain.exchangesPerSecond.median))}**, ` +
        `p95 **${fmt(ratio(framed.p95Us.median, plain.p95Us.median))}**, server CPU per exchange **${fmt(ratio(framed.serverCpuUsPerExchange.median, plain.serverCpuUsPerExchange.median))}**`,
    );
  }
  return [...lines, ...streamRatios(results), ...closedLoopKeyRatios(results.closedLoop ?? [])];
}

function findStream(
  results: BenchResults,
  isKind: string,
  mode: string,
  size: number,
): StreamEntry | undefined {
  return results.stream.find((e) => e.isKind === isKind && e.mode === mode && e.size === size);
}

/** The stream scenario's key ratios: stream mode against the same programs run plain. */
function streamRatios(results: BenchResults): string[] {
  const lines: string[] = [];
  for (const size of [...new Set(results.stream.map((e) => e.size))]) {
    const v = findStream(results, 'proxy', 'vanilla', size);
    const s = findStream(results, 'proxy', 'stream', size);
    if (v && s) {
      const where = `stream mode, http-proxy IS, ${formatBytes(size)} at ${v.rate} req/s`;
      const is = (p: StreamEntry): number => p.summary.tiers.is1!.cpuUsPerRequest.median;
      const bypass =
        1 -
        ratio(
          s.summary.tiers.is1!.rxBytesPerRequest.median,
          v.summary.tiers.is1!.rxBytesPerRequest.median,
        );
      lines.push(
        `- ${where}: IS CPU per request stream/vanilla **${fmt(ratio(is(s), is(v)))}**, whole-chain **${fmt(ratio(chainCpu(s), chainCpu(v)))}**, ` +
          `p99 **${fmt(ratio(s.summary.latencyUs.p99.median, v.summary.latencyUs.p99.median))}**, bytes the IS read **${pct(1 - bypass)}** of vanilla`,
      );
    }
    const h = findStream(results, 'hash', 'stream', size);
    const hv = findStream(results, 'hash', 'vanilla', size);
    if (h && hv) {
      const faults = h.summary.countersPerRequest.isFaults?.median ?? NaN;
      const bytes = h.summary.countersPerRequest.isFaultBytes?.median ?? NaN;
      lines.push(
        `- stream mode, IS reading every body, ${formatBytes(size)}: **${fmt(faults, 1)}** faults per request (${formatBytes(Math.round(bytes / Math.max(1, faults)))} fetched per fault); IS CPU stream/vanilla **${fmt(ratio(h.summary.tiers.is1!.cpuUsPerRequest.median, hv.summary.tiers.is1!.cpuUsPerRequest.median))}**, p99 **${fmt(ratio(h.summary.latencyUs.p99.median, hv.summary.latencyUs.p99.median))}**`,
      );
    }
  }
  return lines;
}

function streamTable(results: BenchResults): string[] {
  if (results.stream.length === 0) return [];
  const lines = [
    '| IS program | mode | size | rate | p50 ms | p99 ms | errors | CPU µs/req BE / IS / FE | IS read B/req | IS faults/req |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const e of results.stream) {
    const t = e.summary.tiers;
    const cpu = ['be', 'is1', 'fe'].map((n) => formatSpread(t[n]!.cpuUsPerRequest)).join(' / ');
    const faults = e.summary.countersPerRequest.isFaults;
    lines.push(
      `| ${e.isKind === 'proxy' ? 'http-proxy' : 'hashing proxy'} | ${e.mode} | ${formatBytes(e.size)} | ${e.rate} | ${(e.summary.latencyUs.p50.median / 1000).toFixed(2)} | ${(e.summary.latencyUs.p99.median / 1000).toFixed(2)} | ${e.summary.errors} | ${cpu} | ${formatSpread(t.is1!.rxBytesPerRequest)} | ${faults ? formatSpread(faults, 1) : '—'} |`,
    );
  }
  return lines;
}

function bypassTable(results: BenchResults): string[] {
  const lines: string[] = [];
  const sizes = [...new Set(results.points.map((p) => p.scenario.size))].sort((a, b) => a - b);
  const columns: { n: number; kind: string; tier: string }[] = [];
  for (const kind of kinds(results)) {
    for (const n of [1, 2]) {
      for (let i = 1; i <= n; i++)
        if (find(results, n, kind, 'odb', sizes[0]!)) columns.push({ n, kind, tier: `is${i}` });
    }
  }
  if (columns.length === 0) return lines;
  lines.push(
    `| payload | thesis (Table 4.2) | ${columns.map((c) => `${c.tier} of FE–${c.n}IS–BE, ${c.kind}`).join(' | ')} |`,
  );
  lines.push(`|---|---|${columns.map(() => '---').join('|')}|`);
  for (const size of sizes) {
    const cells = columns.map((c) => {
      const v = find(results, c.n, c.kind, 'vanilla', size)?.summary.tiers[c.tier]
        ?.rxBytesPerRequest.median;
      const o = find(results, c.n, c.kind, 'odb', size)?.summary.tiers[c.tier]?.rxBytesPerRequest
        .median;
      return v === undefined || o === undefined ? 'n/a' : pct(Math.max(0, Math.min(1, 1 - o / v)));
    });
    lines.push(`| ${formatBytes(size)} | ${thesisBypass[size] ?? '—'} | ${cells.join(' | ')} |`);
  }
  return lines;
}

function cpuChangeTable(results: BenchResults): string[] {
  const lines: string[] = [];
  const sizes = [...new Set(results.points.map((p) => p.scenario.size))].sort((a, b) => a - b);
  const rows: string[] = [];
  for (const kind of kinds(results)) {
    for (const n of [0, 1, 2]) {
      if (n === 0 && kind !== kinds(results)[0]) continue;
      const cells = sizes.map((size) => {
        const v = find(results, n, kind, 'vanilla', size);
        const o = find(results, n, kind, 'odb', size);
        if (!v || !o) return 'n/a';
        const is =
          n > 0
            ? pct(
                ratio(
                  o.summary.tiers.is1!.cpuUsPerRequest.median,
                  v.summary.tiers.is1!.cpuUsPerRequest.median,
                ) - 1,
              )
            : '—';
        return `${is} / ${pct(ratio(chainCpu(o), chainCpu(v)) - 1)}`;
      });
      if (cells.some((c) => c !== 'n/a'))
        rows.push(`| FE–${n}IS–BE${n ? `, ${kind}` : ''} | ${cells.join(' | ')} |`);
    }
  }
  if (rows.length === 0) return lines;
  lines.push(`| chain | ${sizes.map(formatBytes).join(' | ')} |`);
  lines.push(`|---|${sizes.map(() => '---').join('|')}|`);
  lines.push(...rows);
  return lines;
}

function pointTables(results: BenchResults): string[] {
  const lines: string[] = [];
  const groups = new Map<string, PointResult[]>();
  for (const p of results.points) {
    const key = `FE–${p.scenario.intermediates}IS–BE${p.scenario.intermediates ? `, ${p.scenario.isKind} as IS` : ''}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const [title, points] of groups) {
    const tiers = Object.keys(points[0]!.summary.tiers).reverse(); // fe first
    lines.push(`### ${title}`, '');
    lines.push(
      `| payload | mode | rate | achieved req/s | p50 ms | p99 ms | ${tiers.map((t) => `${t} CPU µs/req`).join(' | ')} | ${tiers.map((t) => `${t} rx B/req`).join(' | ')} | errors |`,
    );
    lines.push(`|${'---|'.repeat(6 + 2 * tiers.length + 1)}`);
    for (const p of [...points].sort(
      (a, b) => a.scenario.size - b.scenario.size || a.scenario.mode.localeCompare(b.scenario.mode),
    )) {
      const s = p.summary;
      const ms = (v: typeof s.latencyUs.p50): string =>
        formatSpread({ ...v, median: v.median / 1000, min: v.min / 1000, max: v.max / 1000 }, 2);
      lines.push(
        `| ${formatBytes(p.scenario.size)} | ${p.scenario.mode} | ${p.scenario.rate} | ${formatSpread(s.requestsPerSecond)} | ${ms(s.latencyUs.p50)} | ${ms(s.latencyUs.p99)} | ` +
          `${tiers.map((t) => formatSpread(s.tiers[t]!.cpuUsPerRequest)).join(' | ')} | ${tiers.map((t) => formatSpread(s.tiers[t]!.rxBytesPerRequest)).join(' | ')} | ` +
          `${s.errors}${s.missed ? ` (${s.missed} not sent: rate not held)` : ''} |`,
      );
    }
    lines.push('');
  }
  return lines;
}

function saturationTable(results: BenchResults): string[] {
  if (results.saturation.length === 0) return [];
  const lines = [
    '| experiment | mode | highest rate held (req/s) | p99 there (ms) | steps (offered → achieved, p99 ms) |',
    '|---|---|---|---|---|',
  ];
  for (const s of results.saturation) {
    const label = `FE–1IS–BE, ${formatBytes(s.size)}${s.quota ? `, ${s.quota.tier} limited to ${s.quota.cpus} CPU` : ''}`;
    const atMax = s.result.steps.find((st) => st.held && st.offered === s.result.maxRate);
    const steps = s.result.steps
      .map(
        (st) =>
          `${st.offered}→${st.achieved.toFixed(0)}${st.held ? '' : '✗'} (${(st.p99Us / 1000).toFixed(1)})`,
      )
      .join(', ');
    lines.push(
      `| ${label} | ${s.mode} | ${s.result.maxRate} | ${atMax ? (atMax.p99Us / 1000).toFixed(1) : 'n/a'} | ${steps} |`,
    );
  }
  return lines;
}

function echoTable(results: BenchResults): string[] {
  if (results.echo.length === 0) return [];
  const lines = [
    '| message | framing | exchanges/s | p95 µs | server CPU µs/exchange |',
    '|---|---|---|---|---|',
  ];
  for (const e of results.echo) {
    lines.push(
      `| ${e.size} B | ${e.framing} | ${formatSpread(e.exchangesPerSecond)} | ${formatSpread(e.p95Us)} | ${formatSpread(e.serverCpuUsPerExchange, 1)} |`,
    );
  }
  return lines;
}

/** A `## title` section, or nothing when the run measured nothing for it. */
function section(title: string, body: readonly string[]): string[] {
  return body.length === 0 ? [] : [`## ${title}`, '', ...body];
}

/** A paragraph followed by its table, or nothing when the table has no rows. */
function paragraphWithTable(paragraph: string, table: readonly string[]): string[] {
  return table.length === 0 ? [] : [paragraph, '', ...table, ''];
}

/** Renders the whole report. */
export function renderReport(results: BenchResults, charts: readonly Chart[]): string {
  const m = results.meta;
  const o = m.options as {
    repeats: number;
    duration: number;
    warmup: number;
    threshold: number;
    sloP99: number;
    /** Absent in results written before the option existed. */
    streamWarmup?: number;
  };
  const fixedRate =
    results.points.length +
      results.saturation.length +
      results.stream.length +
      results.echo.length >
    0;
  return [
    '# ODB benchmark report',
    '',
    `Reproduce with: \`${m.command}\` (on a machine like the one below, as root for the testbed).`,
    '',
    `- Run: ${m.startedAt} → ${m.finishedAt ?? 'unfinished'}, environment **${m.environment}**`,
    `- Machine: ${m.machine.cpus} × ${m.machine.cpuModel}, ${formatBytes(m.machine.memoryBytes)}, Linux ${m.machine.kernel}, ${m.machine.os}`,
    `- Versions: ${Object.entries(m.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    // The fixed-rate method; a closed-loop-only run describes its own method in its section.
    ...(fixedRate
      ? [
          `- Method: every point is ${o.repeats} run(s) of ${o.duration / 1000} s after ${o.warmup / 1000} s of warm-up at a fixed request rate (open loop, latency corrected for coordinated omission); figures are medians with [lowest–highest run]. ` +
            `CPU is each tier's user+system time from /proc (all its processes and threads). Bytes: ${m.byteSource}. ` +
            (results.points.length > 0
              ? `In odb mode the back end's threshold is ${formatBytes(o.threshold)}, so every payload size takes the shortcut. `
              : '') +
            'Every response is length-checked, and SHA-256-checked at 1 in 1 (below 256 KiB) or 1 in 8.',
        ]
      : []),
    '',
    '## Key ratios',
    '',
    ...keyRatios(results),
    '',
    ...section('Side by side with the thesis', [
      ...paragraphWithTable(
        'Share of payload bytes that did not cross each intermediate (1 − its bytes received per request in odb mode / in vanilla mode). The thesis measured stream-mode ODB, where head and tail pages of unaligned buffers travel real; header mode moves the whole body, so only the response head crosses.',
        bypassTable(results),
      ),
      ...paragraphWithTable(
        'CPU per request, odb relative to vanilla, at the same fixed rate: `IS change / whole-chain change`. The thesis reports −51 % on the IS from 64 KiB (Fig. 4.11, stream mode) and, for DISC, about −50 % whole-chain CPU with one or two intermediates and −18 % without, from 64 KiB at 600 req/s (Fig. 3.15).',
        cpuChangeTable(results),
      ),
      ...paragraphWithTable(
        `Saturation: the highest offered rate held with p99 ≤ ${o.sloP99} ms (✗: a step that failed). With a CPU quota (cgroup) on one tier, this is the bottleneck experiment of §3.6.4: in the thesis, DISC kept 14 000 req/s where vanilla plateaued at 9 000 with the front end saturated. Header mode relieves the intermediates, not the front end, which still fetches and sends every byte.`,
        saturationTable(results),
      ),
    ]),
    ...section(
      'Stream mode: unmodified programs under `node --import odb/register`',
      paragraphWithTable(
        `A plain Node \`http\` file server (BE), a plain \`http-proxy\` script (IS) and another as the client-facing FE, run as they are (vanilla) and with \`--import odb/register\` (stream), on loopback at the same fixed rates. When a chain starts, each size first gets ${(o.streamWarmup ?? 0) / 1000} s of unmeasured closed-loop load, so both modes are measured with their hot code optimised (at these rates a fresh process runs unoptimised code for many seconds). The hashing proxy reads every body before forwarding it: its faults are first touches of lazy buffers, each fetching a read-ahead chunk from the owner. Bytes here are each process's own read/write syscall counters (/proc/<pid>/io), files included.`,
        streamTable(results),
      ),
    ),
    ...section(
      'Echo: the cost of ODB framing when nothing is bypassed',
      paragraphWithTable(
        '`framed`: the benchmark program frames every message itself; `stream`: the plain program on both ends runs under `--import odb/register`, whose interposition frames every write.',
        echoTable(results),
      ),
    ),
    ...section(
      'Closed-loop saturation: ODB beside stock chains',
      closedLoopSection(results.closedLoop ?? [], m.options as ClosedLoopReportOptions),
    ),
    ...section('All points', pointTables(results)),
    ...section(
      'Charts',
      charts.map((c) => `![${c.title}](charts/${c.file})\n`),
    ),
  ].join('\n');
}
