/**
 * A handler writing its body in tiny pieces: `n` concurrent GETs of `/chunked/<size>?chunk=<c>`
 * (written by an ordinary handler, `c` bytes per write) through FE → IS → BE, odb or vanilla.
 * Prints time to the last response, statuses, bodies checked (SHA-256), and the BE's CPU time and
 * peak RSS (sampled every 20 ms) as one JSON line. Stops waiting after `--deadline`.
 *
 *   node dist/bench/tiny-writes.js [--requests 1] [--size 3000000] [--chunk 1] [--mode odb]
 *                                  [--deadline 300s]
 *
 * Issue 13, item 15; figures in docs/architecture.md ("Handlers that write in tiny pieces").
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeNewKeyFile } from '../src/core/keys/key-file-writer.js';
import { startChain } from '../dev/harness/chain.js';
import { cpuMicros, rssBytes } from '../src/demo/proc-stat.js';
import { syntheticSha256 } from '../src/store/payloads/synthetic.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1' },
    size: { type: 'string', default: '3000000' },
    chunk: { type: 'string', default: '1' },
    mode: { type: 'string', default: 'odb' },
    deadline: { type: 'string', default: '300' },
  },
});
const requests = Number(values.requests);
const size = Number(values.size);
const mode = values.mode === 'vanilla' ? 'vanilla' : 'odb';
const deadlineMs = Number.parseFloat(values.deadline) * 1000;

/** GETs `url` on a new connection: status, and whether the body is complete with that SHA-256. */
function getChecked(url: string, sha256: string): Promise<{ status: string; exact: boolean }> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => hash.update(chunk));
      res.on('end', () =>
        resolve({
          status: String(res.statusCode),
          exact: res.complete && hash.digest('hex') === sha256,
        }),
      );
      res.on('error', () => resolve({ status: String(res.statusCode), exact: false }));
    });
    req.on('error', (err) => resolve({ status: `error: ${err.message}`, exact: false }));
    req.end();
  });
}

const dir = mkdtempSync(join(tmpdir(), 'odb-tiny-writes-'));
const keyFile = join(dir, 'cluster.key');
writeNewKeyFile(keyFile);
const chain = await startChain({ mode, root: dir, keyFile, logLevel: 'warn' });
try {
  const pid = chain.be.pid;
  const baseline = rssBytes(pid);
  let peak = baseline;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      // The BE exited: its last sample stands.
    }
  }, 20);
  const cpuBefore = cpuMicros(pid);
  const started = performance.now();
  const expected = syntheticSha256(1, 0, size);
  const all = Promise.all(
    Array.from({ length: requests }, () =>
      getChecked(chain.url(`/chunked/${size}?chunk=${values.chunk}`), expected),
    ),
  );
  const results = await Promise.race([
    all,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), deadlineMs).unref()),
  ]);
  const elapsedMs = performance.now() - started;
  clearInterval(sampler);
  const statuses: Record<string, number> = {};
  for (const r of results ?? []) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  console.log(
    JSON.stringify({
      mode,
      requests,
      size,
      chunk: Number(values.chunk),
      seconds: results ? +(elapsedMs / 1000).toFixed(1) : `over ${deadlineMs / 1000}`,
      statuses,
      exact: results?.filter((r) => r.exact).length ?? 0,
      beCpuSeconds: +((cpuMicros(pid) - cpuBefore) / 1e6).toFixed(1),
      beRssMiB: { before: Math.round(baseline / 2 ** 20), peak: Math.round(peak / 2 ** 20) },
    }),
  );
} finally {
  await chain.stop();
  rmSync(dir, { recursive: true, force: true });
}
