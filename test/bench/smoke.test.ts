// A short run of the evaluation harness on loopback: it produces its report, JSON and charts, and
// its figures are sane.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { BenchResults } from '../../bench/results.js';

const run = promisify(execFile);
const benchMain = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

test('bench smoke: report, JSON, charts, and sane figures', async () => {
  const out = mkdtempSync(join(tmpdir(), 'odb-bench-smoke-'));
  try {
    await run(process.execPath, [benchMain, '--profile', 'smoke', '--out', out], {
      timeout: 120_000,
    });
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    for (const chart of [
      'cpu-per-tier.svg',
      'bytes-per-tier.svg',
      'latency.svg',
      'saturation-throughput.svg',
    ]) {
      assert.match(readFileSync(join(out, 'charts', chart), 'utf8'), /^<svg/, chart);
      assert.ok(report.includes(`charts/${chart}`));
    }
    assert.match(report, /## Key ratios/);
    const point = (mode: string, size: number) =>
      results.points.find((p) => p.scenario.mode === mode && p.scenario.size === size)!;
    const mib = 1024 * 1024;
    const vanillaIs = point('vanilla', mib).summary.tiers.is1!.rxBytesPerRequest.median;
    const odbIs = point('odb', mib).summary.tiers.is1!.rxBytesPerRequest.median;
    assert.ok(vanillaIs >= mib, `vanilla IS carried ${vanillaIs} B per 1 MiB request`);
    assert.ok(odbIs < 0.01 * mib, `odb IS carried ${odbIs} B per 1 MiB request`);
    for (const p of results.points) {
      assert.equal(p.summary.errors, 0);
      assert.ok(p.summary.requestsPerSecond.median > 0);
      for (const t of Object.values(p.summary.tiers)) assert.ok(t.cpuUsPerRequest.median > 0);
    }
    assert.ok(results.saturation.every((s) => s.result.steps.length > 0));
    assert.ok(
      results.echo.some((e) => e.framing === 'framed') &&
        results.echo.some((e) => e.framing === 'plain'),
    );
    assert.equal(results.meta.environment, 'loopback');
  } finally {
    if (existsSync(out)) rmSync(out, { recursive: true, force: true });
  }
});

test('bench closed-loop smoke: an odb chain and the leanest stock chain under wrk', async () => {
  const out = mkdtempSync(join(tmpdir(), 'odb-bench-closed-'));
  try {
    // Two of the six chains, one size, 1 s runs: about 10 s.
    await run(
      process.execPath,
      [
        benchMain,
        '--profile',
        'closed-loop',
        '--closed-chains',
        'odb,haproxy-haproxy-nginx',
        '--closed-sizes',
        '64KiB',
        '--wrk-duration',
        '1s',
        '--wrk-warmup',
        '1s',
        // Tests share the machine: no waiting for it to be quiet, no measuring again.
        '--quiet-wait',
        '0s',
        '--max-other-cpu',
        '1000',
        '--out',
        out,
      ],
      { timeout: 60_000 },
    );
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(report, /## Closed-loop saturation: ODB beside stock chains/);
    assert.match(
      report,
      /\| whole-chain CPU\/req: header mode \(native\) \/ leanest stock chain \| \*\*/,
    );
    assert.match(readFileSync(join(out, 'charts', 'closed-loop-cpu.svg'), 'utf8'), /^<svg/);
    const entries = results.closedLoop ?? [];
    assert.deepEqual(
      entries.map((e) => [e.chain, e.size]),
      [
        ['odb', 65536],
        ['haproxy-haproxy-nginx', 65536],
      ],
    );
    for (const e of entries) {
      assert.ok(e.check.ok, `${e.chain}: ${e.check.error}`);
      const s = e.summary!;
      assert.ok(s.requests > 0);
      assert.equal(s.socketErrors, 0);
      assert.equal(s.statusErrors, 0);
      assert.ok(s.bytesPerResponse.median >= 65536);
      for (const tier of ['fe', 'is1', 'be'])
        assert.ok(s.cpuUsPerRequest[tier]!.median > 0, `${e.chain} ${tier}`);
    }
    // Header mode: (nearly) every response was a descriptor the FE delivered from the store.
    assert.ok(entries[0]!.summary!.countersPerRequest.shortcuts!.median >= 0.9);
  } finally {
    if (existsSync(out)) rmSync(out, { recursive: true, force: true });
  }
});
