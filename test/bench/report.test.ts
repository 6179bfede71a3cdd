import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderReport } from '../../bench/report.js';
import type { BenchResults } from '../../bench/results.js';
import { spread } from '../../bench/stats.js';

const meta: BenchResults['meta'] = {
  command: 'npm run bench -- --profile echo',
  startedAt: '2026-11-23T00:00:00.000Z',
  finishedAt: '2026-11-23T00:01:00.000Z',
  environment: 'loopback',
  byteSource: 'socket counters',
  machine: { cpus: 2, cpuModel: 'test', memoryBytes: 2 ** 30, kernel: '6.18', os: 'test' },
  versions: { odb: '0.1.0' },
  options: { repeats: 3, duration: 3000, warmup: 1000, threshold: 1024, sloP99: 50 },
};

test('a run that measured only some experiments reports only their sections', () => {
  const echoOnly: BenchResults = {
    meta,
    points: [],
    saturation: [],
    stream: [],
    echo: [
      {
        framing: 'plain',
        size: 64,
        runs: [],
        exchangesPerSecond: spread([1000]),
        p95Us: spread([100]),
        serverCpuUsPerExchange: spread([10]),
      },
    ],
  };
  const report = renderReport(echoOnly, []);
  const headings = report.split('\n').filter((line) => line.startsWith('## '));
  assert.deepEqual(headings, [
    '## Key ratios',
    '## Echo: the cost of ODB framing when nothing is bypassed',
  ]);
  assert.match(report, /\| 64 B \| plain \| 1000 /);
  // The header-mode threshold means nothing to a run without header-mode points.
  assert.doesNotMatch(report, /threshold/);
});
