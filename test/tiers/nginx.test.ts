// A stock nginx as the intermediate tier, configured as nothing more than a reverse proxy.
// Descriptor responses cross it untouched; with the veto line it removes `odb-accept` and the
// full body crosses it instead. Its own access log ($upstream_bytes_received) is the witness.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, test } from 'node:test';
import { startChain, type Chain } from '../../dev/harness/chain.js';
import type { NginxTier } from '../../dev/harness/nginx.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { get, type GetOptions, type Received } from '../helpers/http.js';
import { sameThroughBoth } from '../helpers/compare.js';
import { workspace } from '../helpers/fixtures.js';

const ws = workspace();
let vanilla: Chain;
let odb: Chain;
let vetoed: Chain;
const nginxOf = (chain: Chain): NginxTier => chain.intermediates[0] as NginxTier;
const sizes = [0, 1, 4095, 4096, 65_536, 1024 * 1024];
const threshold = ['--threshold', '4096'];

before(async () => {
  for (const size of sizes) ws.file(`f${size}.bin`, size);
  ws.file('big.bin', 200 * 1024 * 1024, 22);
  const common = {
    root: ws.dir,
    keyFile: ws.keyFile,
    logLevel: 'warn',
    intermediateKind: 'nginx' as const,
  };
  [vanilla, odb, vetoed] = await Promise.all([
    startChain({ ...common, mode: 'vanilla' }),
    startChain({ ...common, mode: 'odb', beArgs: threshold }),
    startChain({ ...common, mode: 'odb', beArgs: threshold, nginxVeto: true }),
  ]);
});

after(async () => {
  await Promise.all([vanilla?.stop(), odb?.stop(), vetoed?.stop()]);
  ws.cleanup();
});

function both(path: string, options: GetOptions = {}): Promise<Received> {
  return sameThroughBoth(vanilla, odb, path, options);
}

/** What nginx received from upstream for requests whose URI matches. */
function relayed(chain: Chain, uri: string): number[] {
  return nginxOf(chain)
    .accessLog()
    .filter((e) => e.uri === uri)
    .map((e) => e.upstreamBytesReceived);
}

test('byte-exact through nginx in both modes, every boundary size, files and synthetic', async () => {
  for (const size of sizes) {
    const r = await both(`/bytes/${size}?seed=8`);
    assert.equal(r.sha256, syntheticSha256(8, 0, size));
    const f = await both(`/f${size}.bin`);
    assert.equal(f.sha256, syntheticSha256(9, 0, size));
  }
});

test('64 MiB and a 200 MiB file through nginx', async () => {
  assert.equal(
    (await both(`/bytes/${64 * 1024 * 1024}?seed=2`)).sha256,
    syntheticSha256(2, 0, 64 * 1024 * 1024),
  );
  assert.equal((await both('/big.bin')).sha256, syntheticSha256(22, 0, 200 * 1024 * 1024));
});

test('HEAD, ranges, chunked bodies and keep-alive through nginx', async () => {
  assert.equal((await both('/bytes/1048576', { method: 'HEAD' })).bytes, 0);
  const partial = await both('/bytes/1048576?seed=5', { headers: { range: 'bytes=4096-1000000' } });
  assert.equal(partial.status, 206);
  assert.equal(partial.sha256, syntheticSha256(5, 4096, 1_000_001));
  const chunked = await both('/chunked/3000000?seed=6');
  assert.equal(chunked.sha256, syntheticSha256(6, 0, 3_000_000));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 200; i++) {
    const r = await get(odb.url(`/bytes/65536?seed=${i % 5}`), { agent });
    assert.equal(r.sha256, syntheticSha256(i % 5, 0, 65_536));
    if (i > 0) assert.ok(r.reusedSocket);
  }
  agent.destroy();
});

test('bypass: nginx receives only the response head for bodies of 64 KiB and more', async () => {
  for (const size of [65_536, 262_144, 1024 * 1024, 16 * 1024 * 1024]) {
    const uri = `/bytes/${size}?seed=11`;
    for (let i = 0; i < 5; i++)
      assert.equal((await get(odb.url(uri))).sha256, syntheticSha256(11, 0, size));
    const received = relayed(odb, uri);
    assert.equal(received.length, 5);
    // Head only: well under 1 KiB of head, no body.
    for (const bytes of received)
      assert.ok(bytes > 0 && bytes < 1024, `${size}: nginx received ${bytes} bytes`);
  }
  // Vanilla, for contrast: the whole body crosses nginx.
  await get(vanilla.url('/bytes/1048576?seed=11'));
  assert.ok(relayed(vanilla, '/bytes/1048576?seed=11')[0]! > 1024 * 1024);
});

test('veto: nginx removing odb-accept makes the full body cross it, still byte-exact', async () => {
  for (const size of [65_536, 1024 * 1024]) {
    const uri = `/bytes/${size}?seed=12`;
    const r = await get(vetoed.url(uri));
    assert.ok(r.complete);
    assert.equal(r.sha256, syntheticSha256(12, 0, size));
    const [received] = relayed(vetoed, uri);
    assert.ok(received! > size, `vetoed ${size}: nginx received ${received}`);
  }
});
