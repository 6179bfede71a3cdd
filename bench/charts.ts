/** SVG charts of a benchmark run, drawn with Vega-Lite (rendered headless, no canvas needed). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { formatBytes } from '../src/core/units.js';
import type { BenchResults, PointResult } from './results.js';

/** A chart written to disk. */
export interface Chart {
  readonly file: string;
  readonly title: string;
}

async function svg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** The points drawn in the per-size charts: our IS where it ran (so n=0,1,2 compare like with like). */
function chartedPoints(results: BenchResults): PointResult[] {
  const kinds = new Set(results.points.map((p) => p.scenario.isKind));
  const kind = kinds.has('odb') ? 'odb' : [...kinds].find((k) => k !== 'none');
  return results.points.filter((p) => p.scenario.isKind === 'none' || p.scenario.isKind === kind);
}

const sizeAxis = (sizes: number[]): object => ({
  field: 'size',
  type: 'ordinal',
  sort: sizes.map(formatBytes),
  title: 'payload',
});

function perTierRows(
  points: PointResult[],
  figure: 'cpuUsPerRequest' | 'rxBytesPerRequest',
): object[] {
  const rows: object[] = [];
  for (const p of points) {
    for (const [tier, t] of Object.entries(p.summary.tiers)) {
      rows.push({
        chain: `FE–${p.scenario.intermediates}IS–BE`,
        size: formatBytes(p.scenario.size),
        mode: p.scenario.mode,
        tier,
        value: Math.max(1, t[figure].median),
      });
    }
  }
  return rows;
}

function perTierChart(
  results: BenchResults,
  figure: 'cpuUsPerRequest' | 'rxBytesPerRequest',
  title: string,
  yTitle: string,
): TopLevelSpec | undefined {
  const points = chartedPoints(results);
  if (points.length === 0) return undefined;
  const sizes = [...new Set(points.map((p) => p.scenario.size))].sort((a, b) => a - b);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values: perTierRows(points, figure) },
    facet: { column: { field: 'chain', title: null } },
    spec: {
      width: 220,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: sizeAxis(sizes),
        y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: yTitle },
        color: { field: 'tier', type: 'nominal' },
        strokeDash: { field: 'mode', type: 'nominal' },
        shape: { field: 'mode', type: 'nominal' },
      },
    },
  } as TopLevelSpec;
}

const percentiles = [50, 75, 90, 95, 99, 99.9, 99.99];

function latencyChart(results: BenchResults): TopLevelSpec | undefined {
  const points = chartedPoints(results).filter(
    (p) => p.scenario.intermediates === 1 || p.scenario.intermediates === 0,
  );
  const largest = Math.max(...points.map((p) => p.scenario.size));
  const n = points.some((p) => p.scenario.intermediates === 1) ? 1 : 0;
  const rows: object[] = [];
  for (const p of points.filter(
    (q) => q.scenario.size === largest && q.scenario.intermediates === n,
  )) {
    const merged = hdr.build();
    for (const run of p.runs) merged.add(hdr.decodeFromCompressedBase64(run.load.histogram));
    for (const q of percentiles)
      rows.push({
        mode: p.scenario.mode,
        percentile: `p${q}`,
        ms: merged.getValueAtPercentile(q) / 1000,
      });
  }
  if (rows.length === 0) return undefined;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Latency distribution, FE–${n}IS–BE, ${formatBytes(largest)}, fixed rate (all runs merged)`,
    width: 420,
    height: 240,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'percentile',
        type: 'ordinal',
        sort: percentiles.map((q) => `p${q}`),
        title: 'percentile',
      },
      y: {
        field: 'ms',
        type: 'quantitative',
        scale: { type: 'log' },
        title: 'latency (ms, corrected for coordinated omission)',
      },
      color: { field: 'mode', type: 'nominal' },
    },
  } as TopLevelSpec;
}

function saturationChart(results: BenchResults, y: 'achieved' | 'p99'): TopLevelSpec | undefined {
  const rows: object[] = [];
  for (const s of results.saturation) {
    const label = s.quota
      ? `${formatBytes(s.size)}, ${s.quota.tier} at ${s.quota.cpus} CPU`
      : formatBytes(s.size);
    for (const step of s.result.steps) {
      rows.push({
        experiment: label,
        mode: s.mode,
        offered: step.offered,
        achieved: step.achieved,
        p99: step.p99Us / 1000,
      });
    }
  }
  if (rows.length === 0) return undefined;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title:
      y === 'achieved'
        ? 'Saturation: achieved vs offered requests/s'
        : 'Saturation: p99 latency vs offered requests/s',
    data: { values: rows },
    facet: { column: { field: 'experiment', title: null } },
    spec: {
      width: 220,
      height: 200,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'offered', type: 'quantitative', title: 'offered req/s' },
        y:
          y === 'achieved'
            ? { field: 'achieved', type: 'quantitative', title: 'achieved req/s' }
            : { field: 'p99', type: 'quantitative', scale: { type: 'log' }, title: 'p99 (ms)' },
        color: { field: 'mode', type: 'nominal' },
        order: { field: 'offered' },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  } as TopLevelSpec;
}

/** Draws every chart the results allow into `dir`; returns what was written. */
/** Closed loop: CPU per request of each tier, stacked per chain, a panel per size. */
function closedLoopChart(results: BenchResults): TopLevelSpec | undefined {
  const entries = (results.closedLoop ?? []).filter((e) => e.summary);
  if (entries.length === 0) return undefined;
  const sizes = [...new Set(entries.map((e) => e.size))].sort((a, b) => a - b);
  const tierNames: Readonly<Record<string, string>> = { fe: 'FE', is1: 'IS', be: 'BE' };
  const rows = entries.flatMap((e) =>
    Object.entries(e.summary!.cpuUsPerRequest).map(([tier, s]) => ({
      // The short names of --closed-chains: the labels are too long for an axis.
      chain: e.chain,
      size: formatBytes(e.size),
      tier: tierNames[tier] ?? tier,
      value: s.median,
    })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Closed-loop saturation: CPU µs per request per tier (medians)',
    data: { values: rows },
    facet: {
      column: { field: 'size', type: 'ordinal', sort: sizes.map(formatBytes), title: null },
    },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 200,
      height: 220,
      mark: 'bar',
      encoding: {
        x: {
          field: 'chain',
          type: 'nominal',
          sort: null,
          title: null,
          axis: { labelAngle: -50, labelLimit: 200 },
        },
        y: { field: 'value', type: 'quantitative', stack: 'zero', title: 'CPU µs per request' },
        color: { field: 'tier', type: 'nominal', sort: ['FE', 'IS', 'BE'] },
        order: { field: 'tier', sort: 'ascending' },
      },
    },
  } as TopLevelSpec;
}

export async function renderCharts(results: BenchResults, dir: string): Promise<Chart[]> {
  const specs: [string, string, TopLevelSpec | undefined][] = [
    [
      'cpu-per-tier.svg',
      'CPU per request per tier',
      perTierChart(
        results,
        'cpuUsPerRequest',
        'CPU per request per tier, at the fixed rate (medians)',
        'CPU µs per request',
      ),
    ],
    [
      'bytes-per-tier.svg',
      'Bytes received per request per tier',
      perTierChart(
        results,
        'rxBytesPerRequest',
        'Bytes received per request per tier (medians)',
        'bytes received per request',
      ),
    ],
    ['latency.svg', 'Latency distribution', latencyChart(results)],
    ['saturation-throughput.svg', 'Saturation: throughput', saturationChart(results, 'achieved')],
    ['saturation-p99.svg', 'Saturation: p99 latency', saturationChart(results, 'p99')],
    ['closed-loop-cpu.svg', 'Closed-loop saturation: CPU per request', closedLoopChart(results)],
  ];
  const charts: Chart[] = [];
  for (const [file, title, spec] of specs) {
    if (!spec) continue;
    writeFileSync(join(dir, file), await svg(spec));
    charts.push({ file, title });
  }
  return charts;
}
