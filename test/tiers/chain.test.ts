// FE → IS → BE as real `odb` processes, vanilla and odb side by side: every response must have the
// same status, headers and bytes (SHA-256) in both modes, whichever way its body travelled.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, test } from 'node:test';
import { startChain, type Chain } from '../../dev/harness/chain.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { get, type GetOptions, type Received } from '../helpers/http.js';
import { sameThroughBoth } from '../helpers/compare.js';
import { workspace } from '../helpers/fixtures.js';

const ws = workspace();
let vanilla: Chain;
let odb: Chain;
const sizes = [0, 1, 4095, 4096, 65_536, 1024 * 1024];

before(async () => {
  for (const size of sizes) ws.file(`f${size}.bin`, size);
  ws.file('big.bin', 200 * 1024 * 1024, 21);
  [vanilla, odb] = await Promise.all([
    startChain({ mode: 'vanilla', root: ws.dir, logLevel: 'warn' }),
    // A low threshold puts the boundary between 4095 (real) and 4096 (descriptor).
    startChain({
      mode: 'odb',
      root: ws.dir,
      keyFile: ws.keyFile,
      logLevel: 'warn',
      beArgs: ['--threshold', '4096'],
    }),
  ]);
});

after(async () => {
  await Promise.all([vanilla?.stop(), odb?.stop()]);
  ws.cleanup();
});

/** Requests `path` through both chains; asserts they agree; returns the odb response. */
function both(path: string, options: GetOptions = {}): Promise<Received> {
  return sameThroughBoth(vanilla, odb, path, options);
}

async function descriptorResponses(): Promise<number> {
  return metricValue(await scrape(odb.be.addresses.metrics!), 'odb_descriptor_responses_total');
}

test('synthetic bodies of every boundary size are byte-exact in both modes', async () => {
  const before = await descriptorResponses();
  for (const size of sizes) {
    const r = await both(`/bytes/${size}?seed=3`);
    assert.equal(r.status, 200);
    assert.equal(r.bytes, size);
    assert.equal(r.sha256, syntheticSha256(3, 0, size));
    assert.equal(r.headers['content-length'], String(size));
    assert.equal(r.headers['cache-control'], undefined);
    assert.equal(
      Object.keys(r.headers).some((h) => h.startsWith('odb-')),
      false,
    );
  }
  // 4096, 65536 and 1 MiB went as descriptors; 0, 1 and 4095 did not.
  assert.equal((await descriptorResponses()) - before, 3);
});

test('files of every boundary size are byte-exact in both modes', async () => {
  for (const size of sizes) {
    const r = await both(`/f${size}.bin`);
    assert.equal(r.bytes, size);
    assert.equal(r.sha256, syntheticSha256(9, 0, size));
    assert.ok(r.headers.etag && r.headers['last-modified']);
  }
});

test('64 MiB synthetic body', async () => {
  const r = await both(`/bytes/${64 * 1024 * 1024}?seed=4`);
  assert.equal(r.sha256, syntheticSha256(4, 0, 64 * 1024 * 1024));
});

test('200 MiB file served from disk', async () => {
  const r = await both('/big.bin');
  assert.equal(r.bytes, 200 * 1024 * 1024);
  assert.equal(r.sha256, syntheticSha256(21, 0, 200 * 1024 * 1024));
});

test('HEAD has the headers and no body', async () => {
  for (const path of ['/bytes/1048576', '/f65536.bin']) {
    const r = await both(path, { method: 'HEAD' });
    assert.equal(r.bytes, 0);
    assert.ok(Number(r.headers['content-length']) > 0);
  }
});

test('ranges: 206 with the right sub-range, suffix ranges, 416', async () => {
  const r = await both('/bytes/1048576?seed=5', { headers: { range: 'bytes=100000-299999' } });
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], 'bytes 100000-299999/1048576');
  assert.equal(r.sha256, syntheticSha256(5, 100_000, 300_000));
  const suffix = await both('/f1048576.bin', { headers: { range: 'bytes=-5000' } });
  assert.equal(suffix.sha256, syntheticSha256(9, 1048576 - 5000, 1048576));
  const small = await both('/f65536.bin', { headers: { range: 'bytes=0-99' } });
  assert.equal(small.sha256, syntheticSha256(9, 0, 100));
  const bad = await both('/f65536.bin', { headers: { range: 'bytes=70000-' } });
  assert.equal(bad.status, 416);
});

test('conditional GET answers 304', async () => {
  const first = await both('/f1048576.bin');
  const r = await both('/f1048576.bin', {
    headers: { 'if-none-match': String(first.headers.etag) },
  });
  assert.equal(r.status, 304);
  assert.equal(r.bytes, 0);
});

test('chunked bodies of unknown length (written by an ordinary handler)', async () => {
  for (const size of [1000, 1024 * 1024, 64 * 1024 * 1024]) {
    const r = await both(`/chunked/${size}?seed=6`);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.sha256, syntheticSha256(6, 0, size));
  }
});

test('1000 keep-alive requests on one connection', async () => {
  for (const chain of [vanilla, odb]) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let reused = 0;
    for (let i = 0; i < 1000; i++) {
      const size = i % 2 === 0 ? 65_536 : 1000;
      const r = await get(chain.url(`/bytes/${size}?seed=${i % 7}`), { agent });
      assert.equal(r.sha256, syntheticSha256(i % 7, 0, size));
      if (r.reusedSocket) reused++;
    }
    agent.destroy();
    assert.equal(reused, 999);
  }
});
