// What the IS carries in odb mode (its own socket counters), and that the BE's store empties:
// released as the FE finishes, expired when nobody fetches.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import type { OdbProcess } from '../../src/demo/tier-process.js';
import { descriptorFromText } from '../../src/protocol/descriptor.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { odbChainForFile } from '../helpers/chain.js';
import { get } from '../helpers/http.js';
import { eventually, rawExchange } from '../helpers/net.js';
import { startBackendProcess } from '../helpers/tiers.js';

const files = odbChainForFile({
  beArgs: ['--threshold', '64KiB'],
});
const { ws } = files;

async function isUpstreamReceived(): Promise<number> {
  const samples = await scrape(files.chain.intermediates[0]!.addresses.metrics!);
  return metricValue(samples, 'odb_socket_bytes_total', {
    peer: 'upstream',
    direction: 'received',
  });
}

async function beMetric(
  name: string,
  labels: Record<string, string> = {},
  be: OdbProcess = files.chain.be,
): Promise<number> {
  return metricValue(await scrape(be.addresses.metrics!), name, labels);
}

test('bypass: for bodies of 64 KiB and more the IS receives the head and nothing like the body', async () => {
  // The descriptor response head, as the BE sends it, is what the IS may receive.
  const direct = await rawExchange(
    Number(files.chain.be.addresses.http!.split(':')[1]),
    'GET /bytes/1048576 HTTP/1.1\r\nHost: b\r\nodb-accept: 1\r\n\r\n',
  );
  const headBytes = direct.data.indexOf('\r\n\r\n') + 4;
  assert.ok(headBytes > 100 && headBytes < 1024, `descriptor head of ${headBytes} bytes`);
  // Nobody will fetch that one: release it so that the store is empty for the next test.
  const text = /odb-payload: (\S+)/i.exec(direct.data.toString('latin1'))![1]!;
  const storePort = Number(files.chain.be.addresses.store!.split(':')[1]);
  const released = await rawExchange(
    storePort,
    `DELETE /odb/v1/payload/${text} HTTP/1.1\r\nHost: s\r\n\r\n`,
  );
  assert.match(released.data.toString(), /^HTTP\/1.1 204/);
  for (const size of [65_536, 262_144, 1024 * 1024, 16 * 1024 * 1024]) {
    const before = await isUpstreamReceived();
    const n = 20;
    for (let i = 0; i < n; i++) {
      const r = await get(files.chain.url(`/bytes/${size}?seed=${i}`));
      assert.ok(r.complete);
      assert.equal(r.sha256, syntheticSha256(i, 0, size));
    }
    const perResponse = ((await isUpstreamReceived()) - before) / n;
    assert.ok(
      perResponse <= headBytes + 1024,
      `${size}: IS received ${perResponse} bytes per response`,
    );
  }
});

test('release: after 1000 requests of 1 MiB the store holds nothing once the FE is done', async () => {
  const registered = await beMetric('odb_store_payloads_total', { event: 'registered' });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < 1000) {
      const i = next++;
      const r = await get(files.chain.url(`/bytes/1048576?seed=${i % 13}`));
      assert.ok(r.complete && r.bytes === 1048576);
      if (i % 50 === 0) assert.equal(r.sha256, syntheticSha256(i % 13, 0, 1048576));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  assert.equal(
    (await beMetric('odb_store_payloads_total', { event: 'registered' })) - registered,
    1000,
  );
  // Released, not expired: the default TTL (30 s) has not passed.
  await eventually(async () => (await beMetric('odb_store_entries')) === 0, 5000, 'empty store');
  assert.equal(await beMetric('odb_store_payloads_total', { event: 'expired' }), 0);
});

test('expiry: a payload nobody fetches is gone after its TTL', async () => {
  const be = await startBackendProcess({
    name: 'be-ttl',
    root: ws.dir,
    keyFile: ws.keyFile,
    metrics: true,
    args: ['--store-ttl', '1s'],
  });
  try {
    const port = Number(be.addresses.http!.split(':')[1]);
    const { data } = await rawExchange(
      port,
      'GET /bytes/1048576 HTTP/1.1\r\nHost: b\r\nodb-accept: 1\r\n\r\n',
    );
    const text = /odb-payload: (\S+)/i.exec(data.toString('latin1'))![1]!;
    assert.equal(await beMetric('odb_store_entries', {}, be), 1);
    await eventually(
      async () => (await beMetric('odb_store_entries', {}, be)) === 0,
      5000,
      'expiry',
    );
    assert.equal(await beMetric('odb_store_payloads_total', { event: 'expired' }, be), 1);
    const storePort = Number(descriptorFromText(text).endpoint.split(':')[1]);
    const late = await rawExchange(
      storePort,
      `GET /odb/v1/payload/${text} HTTP/1.1\r\nHost: s\r\n\r\n`,
    );
    assert.match(late.data.toString(), /^HTTP\/1.1 (404|410)/);
  } finally {
    await be.stop();
  }
});
