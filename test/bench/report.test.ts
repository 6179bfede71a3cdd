import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  closedLoopChainInfo,
  summariseClosedLoop,
  type ClosedLoopChainName,
} from '../../bench/closed-loop.js';
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

test('a closed-loop run reports its cells side by side, its ratios, and a failed byte check', () => {
  const summary = (rate: number, cpu: Record<string, number>, odb: boolean) =>
    summariseClosedLoop([
      {
        wrk: {
          requests: rate * 5,
          durationUs: 5_000_000,
          requestsPerSecond: rate,
          bytes: rate * 5 * 1100,
          errors: { connect: 0, read: 0, write: 0, timeout: 0 },
          statusErrors: 0,
          latencyUs: { mean: 900, p50: 800, p90: 1500, p99: 2000, p999: 3000, max: 4000 },
        },
        cpuUsPerRequest: cpu,
        clientCpuUsPerRequest: 10,
        countersPerRequest: odb
          ? { shortcuts: 1, feKernel: 1, feJavascript: 0, beKernel: 1, beJavascript: 0 }
          : {},
        otherCpuShare: 0.02,
        stealShare: 0.01,
        wallUs: 5_000_000,
        startedIdle: true,
        startedQuiet: true,
        attempts: 1,
      },
    ]);
  const entry = (chain: ClosedLoopChainName, s?: ReturnType<typeof summary>) => ({
    chain,
    label: closedLoopChainInfo[chain].label,
    tiers: closedLoopChainInfo[chain].tiers,
    size: 1024,
    check: s
      ? { ok: true, expectedSha256: 'a', sha256: 'a', bytes: 1024 }
      : { ok: false, expectedSha256: 'a', sha256: 'b', bytes: 1024, error: 'digest differs' },
    runs: [],
    summary: s,
  });
  const results: BenchResults = {
    meta: {
      ...meta,
      options: { ...meta.options, wrkThreads: 1, wrkConnections: 8, maxOtherCpu: 0.3 },
    },
    points: [],
    saturation: [],
    stream: [],
    echo: [],
    closedLoop: [
      entry('vanilla', summary(1000, { be: 300, is1: 300, fe: 400 }, false)),
      entry('odb', summary(2000, { be: 100, is1: 50, fe: 350 }, true)),
      entry('haproxy-haproxy-nginx', summary(4000, { be: 40, is1: 60, fe: 50 }, false)),
      entry('nginx-haproxy-nginx'),
    ],
  };
  const report = renderReport(results, []);
  const headings = report.split('\n').filter((line) => line.startsWith('## '));
  assert.deepEqual(headings, [
    '## Key ratios',
    '## Closed-loop saturation: ODB beside stock chains',
  ]);
  // The fixed-rate method line belongs to fixed-rate runs.
  assert.doesNotMatch(report, /- Method: every point/);
  assert.match(report, /`wrk -t1 -c8 /);
  // 500 / 1000 and 500 / 150 of whole-chain CPU; 2000 / 1000 of throughput.
  assert.match(
    report,
    /\| whole-chain CPU\/req: header mode \(native\) \/ vanilla \| \*\*0\.50\*\* \|/,
  );
  assert.match(report, /leanest stock chain \| \*\*3\.33\*\* \|/);
  assert.match(
    report,
    /\| saturation throughput: header mode \(native\) \/ vanilla \| \*\*2\.00\*\* \|/,
  );
  assert.match(
    report,
    /\| odb → odb → odb, header mode \(native\) \(`odb`\) \| 2000 \| 10000 \| 0\.80 \| 2\.00 \| 350 \| 50 \| 100 \| \*\*500\*\* \|/,
  );
  assert.match(report, /100 % \/ 100 %/);
  assert.match(
    report,
    /\| nginx → HAProxy → nginx \(`nginx-haproxy-nginx`\) \| not measured .*FAILED\*\*: digest differs \|/,
  );
  assert.match(report, /1 closed-loop cell\(s\) failed the byte check/);
  assert.match(
    report,
    /\(other CPU \+ steal\) used more than 30 % of one CPU was measured again .*: 0 run\(s\) were; no kept run/,
  );
  assert.match(report, /\| 2 % \/ 1 % \|/);
});
