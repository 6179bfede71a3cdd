// The buffer store's own resources under peers that open fetches and never read them (issue 13,
// item 13): fetches are bounded per payload and per peer, a response that does not drain is cut,
// and the memory of bytes in transit is bounded by the store's budget and given back. Real `odb
// be` and `odb fe` processes; the hostile peers are raw sockets from other loopback addresses.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { rssBytes } from '../../src/demo/proc-stat.js';
import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { workspace } from '../helpers/fixtures.js';
import { get } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { neverReads, rawGet, type RawReader } from '../helpers/slow-readers.js';

const MiB = 1024 * 1024;
const fileBytes = 32 * MiB;
const budgetMiB = 8;
const perPayload = 8;
const perPeer = 100;
const sendTimeoutMs = 3000;

const ws = workspace();
ws.file('big.bin', fileBytes, 21);
const fileSha = syntheticSha256(21, 0, fileBytes);
let be: OdbProcess;
let kernelBe: OdbProcess;
let fe: OdbProcess;
let storeHost: string;
let storePort: number;
const readers: RawReader[] = [];

const beArgs = [
  'be',
  '--listen',
  '127.0.0.1:0',
  '--store-listen',
  '127.0.0.1:0',
  '--root',
  ws.dir,
  '--key-file',
  ws.keyFile,
  '--store-budget',
  `${budgetMiB}MiB`,
  '--store-max-fetches-per-payload',
  String(perPayload),
  '--store-max-fetches-per-peer',
  String(perPeer),
  '--store-send-timeout',
  `${sendTimeoutMs}ms`,
  '--metrics-listen',
  '127.0.0.1:0',
  '--log-level',
  'error',
];

before(async () => {
  // The JavaScript path, whose reads hold memory (transit) against the budget; and the kernel
  // path (sendfile), which holds none.
  be = await startOdbProcess('be', beArgs, { env: { ...process.env, ODB_NATIVE: 'off' } });
  kernelBe = await startOdbProcess('be', beArgs);
  [storeHost, storePort] = splitHostPort(be.addresses.store!);
  fe = await startOdbProcess('fe', [
    'fe',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://${be.addresses.http}`,
    '--key-file',
    ws.keyFile,
    '--store-allow',
    be.addresses.store!,
    '--log-level',
    'error',
  ]);
});

after(async () => {
  for (const reader of readers) reader.destroy();
  await Promise.all([fe?.stop(), be?.stop(), kernelBe?.stop()]);
  ws.cleanup();
});

function splitHostPort(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}

/** A fresh descriptor of the whole file, as the BE (`from`) answers an offered request. */
function descriptorOfFile(from: OdbProcess = be): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      `http://${from.addresses.http}/big.bin`,
      { headers: { 'odb-accept': '1' } },
      (res) => {
        res.resume();
        const text = res.headers['odb-payload'];
        if (typeof text === 'string') resolve(text);
        else reject(new Error(`no descriptor (status ${res.statusCode})`));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** `count` fetches of `descriptors` (round robin) from `localAddress` that never read a byte. */
async function stalledFetches(
  descriptors: readonly string[],
  count: number,
  localAddress: string,
  store: [string, number] = [storeHost, storePort],
): Promise<RawReader[]> {
  const opened = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      rawGet(
        store[0],
        store[1],
        `/odb/v1/payload/${descriptors[i % descriptors.length]}`,
        neverReads,
        localAddress,
      ),
    ),
  );
  readers.push(...opened);
  return opened;
}

function statuses(list: readonly RawReader[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of list) {
    const key = `${r.status}${r.errorCode ? ` ${r.errorCode}` : ''}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

async function beMetric(name: string, labels?: Record<string, string>): Promise<number> {
  return metricValue(await scrape(be.addresses.metrics!), name, labels);
}

/** A client's large response through the FE: every byte, the right bytes. */
async function assertServedThroughFe(): Promise<void> {
  const got = await get(`http://${fe.addresses.http}/big.bin`);
  assert.equal(got.status, 200);
  assert.equal(got.complete, true);
  assert.equal(got.sha256, fileSha);
}

test('fetches beyond the per-payload and per-peer limits get ODB_ERR_BUSY; other peers are served', async () => {
  const one = await descriptorOfFile();
  const onOne = await stalledFetches([one], perPayload + 3, '127.0.0.2');
  assert.deepEqual(statuses(onOne), { '200': perPayload, '503 ODB_ERR_BUSY': 3 });

  // One peer, many payloads: the per-peer limit.
  const many = await Promise.all(Array.from({ length: 16 }, descriptorOfFile));
  const fromOnePeer = await stalledFetches(many, perPeer + 10, '127.0.0.3');
  assert.deepEqual(statuses(fromOnePeer), { '200': perPeer, '503 ODB_ERR_BUSY': 10 });
  assert.equal(await beMetric('odb_store_fetches_refused_total', { limit: 'payload' }), 3);
  assert.equal(await beMetric('odb_store_fetches_refused_total', { limit: 'peer' }), 10);

  // The front end (another peer, 127.0.0.1) still gets its fetches.
  await assertServedThroughFe();
  for (const r of [...onOne, ...fromOnePeer]) r.destroy();
  await eventually(
    async () => (await beMetric('odb_store_fetches_in_flight')) === 0,
    15_000,
    'fetches to end',
  );
});

test('stalled fetches hold at most the budget, are cut after the send timeout and give it back', async (t) => {
  await assertServedThroughFe(); // warm: the BE's steady-state memory
  const baseline = rssBytes(be.pid);
  const descriptors = await Promise.all(Array.from({ length: 50 }, descriptorOfFile));
  const peers = ['127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'];
  const stalled = (
    await Promise.all(peers.map((peer) => stalledFetches(descriptors, perPeer, peer)))
  ).flat();
  assert.deepEqual(statuses(stalled), { '200': stalled.length });
  // Each stalled fetch has read what its socket would take; beyond the budget, 16 KiB each.
  const inTransitBound = budgetMiB * MiB + stalled.length * 16 * 1024;
  await eventually(
    async () => (await beMetric('odb_store_transit_squeezed_total')) > 0,
    15_000,
    'the budget to be spent',
  );
  const transit = await beMetric('odb_store_transit_bytes');
  assert.ok(transit <= inTransitBound, `${transit} bytes in transit`);
  const grown = rssBytes(be.pid) - baseline;
  // Before the fix every stalled fetch held a 256 KiB read buffer outside the budget: ~100 MiB.
  t.diagnostic(
    `${stalled.length} stalled fetches: ${(transit / MiB).toFixed(1)} MiB in transit, ` +
      `BE RSS +${(grown / MiB).toFixed(1)} MiB (budget ${budgetMiB} MiB)`,
  );
  assert.ok(grown < inTransitBound + 24 * MiB, `BE grew by ${(grown / MiB).toFixed(1)} MiB`);
  await assertServedThroughFe();

  const started = Date.now();
  await eventually(
    async () => (await beMetric('odb_store_send_timeouts_total')) >= stalled.length,
    20_000,
    'stalled fetches to be cut',
  );
  const cutAfter = Date.now() - started;
  t.diagnostic(`cut ${cutAfter} ms after the check began (store send timeout ${sendTimeoutMs} ms)`);
  assert.ok(cutAfter < sendTimeoutMs * 4, `cut after ${cutAfter} ms`);
  // The peers see it once they look: a reset, short of the body.
  for (const r of stalled) r.socket.resume();
  await eventually(() => stalled.every((r) => r.closed()), 10_000, 'the peers to see the cut');
  await eventually(
    async () =>
      (await beMetric('odb_store_fetches_in_flight')) === 0 &&
      (await beMetric('odb_store_transit_bytes')) === 0,
    15_000,
    'the fetches to end and their transit memory to be given back',
  );
  const grownAfter = rssBytes(be.pid) - baseline;
  t.diagnostic(`after the cut: BE RSS +${(grownAfter / MiB).toFixed(1)} MiB, 0 bytes in transit`);
  assert.ok(grownAfter < inTransitBound + 24 * MiB);
  await assertServedThroughFe();
});

test('kernel path: stalled sendfile fetches hold no memory and are cut after the send timeout', async () => {
  const metric = async (name: string): Promise<number> =>
    metricValue(await scrape(kernelBe.addresses.metrics!), name);
  const baseline = rssBytes(kernelBe.pid);
  const descriptors = await Promise.all(
    Array.from({ length: 20 }, () => descriptorOfFile(kernelBe)),
  );
  const stalled = await stalledFetches(
    descriptors,
    80,
    '127.0.0.8',
    splitHostPort(kernelBe.addresses.store!),
  );
  assert.deepEqual(statuses(stalled), { '200': stalled.length });
  await eventually(
    async () => (await metric('odb_store_fetches_in_flight')) === 80,
    10_000,
    'the fetches to start',
  );
  // Each fetch's bytes wait in its socket (the kernel's), none in the store's memory.
  assert.equal(await metric('odb_store_transit_bytes'), 0);
  const grown = rssBytes(kernelBe.pid) - baseline;
  assert.ok(grown < 24 * MiB, `BE grew by ${(grown / MiB).toFixed(1)} MiB`);
  await eventually(
    async () => (await metric('odb_store_send_timeouts_total')) >= stalled.length,
    sendTimeoutMs * 4,
    'stalled sends to be cut',
  );
  for (const r of stalled) r.socket.resume();
  await eventually(() => stalled.every((r) => r.closed()), 10_000, 'the peers to see the cut');
  await eventually(
    async () => (await metric('odb_store_fetches_in_flight')) === 0,
    10_000,
    'the fetches to end',
  );
  assert.equal(
    metricValue(await scrape(kernelBe.addresses.metrics!), 'odb_store_sends_total', {
      path: 'kernel',
    }),
    stalled.length,
  );
});
