// Slow readers must not starve other clients (issue 13, item 5, first bullet): forty clients
// reading large descriptor responses at about 1 KB/s each hold a store connection of the front
// end, and the others' large responses must still be delivered, byte-exact and at once; with a
// short send timeout the slow readers are cut and counted, while a client that reads is never
// cut, however long its body takes. A real FE → IS → BE chain; the slow readers are raw sockets.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startChain, type Chain } from '../../dev/harness/chain.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { workspace } from '../helpers/fixtures.js';
import { get } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { rawGet, type RawReader } from '../helpers/slow-readers.js';

const MiB = 1024 * 1024;
const slowReaders = 40;
/** Large enough that no slow reader gets near its end, whatever the kernels buffer. */
const slowBody = 256 * MiB;
const oneKbPerSecond = { bytesPerTick: 1024, tickMs: 1000 };

const ws = workspace();
let chain: Chain;
let strictFe: OdbProcess; // a second front end with a short send timeout
const readers: RawReader[] = [];

before(async () => {
  chain = await startChain({ mode: 'odb', keyFile: ws.keyFile, root: ws.dir, logLevel: 'warn' });
  strictFe = await startOdbProcess('fe-strict', [
    'fe',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://${chain.intermediates[0]!.addresses.http}`,
    '--key-file',
    ws.keyFile,
    '--store-allow',
    chain.be.addresses.store!,
    '--send-timeout',
    '3s',
    '--send-min-rate',
    '32KiB',
    '--metrics-listen',
    '127.0.0.1:0',
    '--log-level',
    'error',
  ]);
});

after(async () => {
  for (const reader of readers) reader.destroy();
  await Promise.all([strictFe?.stop(), chain?.stop()]);
  ws.cleanup();
});

function hostPort(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}

/** `slowReaders` clients of large descriptor responses, each taking about 1 KB/s. */
async function startSlowReaders(feAddress: string): Promise<RawReader[]> {
  const [host, port] = hostPort(feAddress);
  const opened = await Promise.all(
    Array.from({ length: slowReaders }, (_, i) =>
      rawGet(host, port, `/bytes/${slowBody}?seed=${100 + i}`, oneKbPerSecond),
    ),
  );
  readers.push(...opened);
  for (const r of opened) assert.equal(r.status, 200);
  return opened;
}

/** Latencies (ms) of `count` sequential 1 MiB responses, each checked byte for byte. */
async function oneMiBLatencies(url: string, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const got = await get(`${url}/bytes/${MiB}?seed=${7 + i}`, { agent: false });
    latencies.push(performance.now() - started);
    assert.equal(got.status, 200);
    assert.equal(got.complete, true);
    assert.equal(got.sha256, syntheticSha256(7 + i, 0, MiB));
  }
  return latencies;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function metric(address: string, name: string): Promise<number> {
  return metricValue(await scrape(address), name);
}

test('forty slow readers hold store connections; other large responses are delivered at once', async (t) => {
  const feUrl = `http://${chain.fe.addresses.http}`;
  const feMetrics = chain.fe.addresses.metrics!;
  await oneMiBLatencies(feUrl, 4); // warm: connections, JIT
  const before = await oneMiBLatencies(feUrl, 8);
  const slow = await startSlowReaders(chain.fe.addresses.http!);
  // Each holds a store connection while its client does not take the bytes.
  await eventually(
    async () => (await metric(feMetrics, 'odb_store_connections_in_use')) >= slowReaders,
    10_000,
    'the slow readers to hold their store connections',
  );
  const during = await oneMiBLatencies(feUrl, 8);
  t.diagnostic(
    `1 MiB through FE, median (max) ms: alone ${median(before).toFixed(1)} ` +
      `(${Math.max(...before).toFixed(1)}); with ${slowReaders} slow readers ` +
      `${median(during).toFixed(1)} (${Math.max(...during).toFixed(1)})`,
  );
  // Before the fix these waited for one of 32 store connections until the 5 s fetch timeout: 502.
  assert.ok(Math.max(...during) < 2500, `slowest 1 MiB response took ${Math.max(...during)} ms`);
  assert.equal(await metric(feMetrics, 'odb_store_connection_waits_total'), 0);
  assert.equal(await metric(feMetrics, 'odb_send_timeouts_total'), 0); // default: 512 B/s
  // They were reading all along (slowly), and nobody cut them.
  await eventually(() => slow.every((r) => r.bodyBytes() > 0), 10_000, 'every slow reader to read');
  assert.ok(slow.every((r) => !r.closed()));
  for (const r of slow) r.destroy();
  await eventually(
    async () => (await metric(feMetrics, 'odb_store_connections_in_use')) === 0,
    10_000,
    'the store connections to be given back',
  );
});

test('with a short send timeout the slow readers are cut and counted; a reading client is not', async (t) => {
  const metricsAddress = strictFe.addresses.metrics!;
  const [host, port] = hostPort(strictFe.addresses.http!);
  // A client well above the minimum rate (32 KiB/s) whose body takes longer than the send
  // timeout. (Its progress shows when the kernel's buffers drain, every MiB or so on loopback:
  // the timeout must cover that gap.)
  const steadyBody = 12 * MiB;
  const steady = await rawGet(host, port, `/bytes/${steadyBody}?seed=3`, {
    bytesPerTick: 16 * 1024,
    tickMs: 4,
  });
  readers.push(steady);
  const started = Date.now();
  const slow = await startSlowReaders(strictFe.addresses.http!);
  await eventually(
    async () => (await metric(metricsAddress, 'odb_send_timeouts_total')) >= slowReaders,
    15_000,
    'the slow readers to be cut',
  );
  t.diagnostic(`${slowReaders} slow readers cut within ${Date.now() - started} ms (timeout 3 s)`);
  for (const r of slow) r.socket.resume(); // they see the reset once they look
  await eventually(() => slow.every((r) => r.closed()), 10_000, 'the slow readers to see the cut');
  await eventually(
    async () => (await metric(metricsAddress, 'odb_store_connections_in_use')) === 0,
    10_000,
    'their store connections to be given back',
  );
  await eventually(() => steady.bodyBytes() >= steadyBody, 30_000, 'the steady reader to finish');
  assert.equal(steady.closed(), false, 'the steady reader was cut');
  assert.ok(Date.now() - started > 3000, 'the steady body took longer than the send timeout');
  assert.equal(await metric(metricsAddress, 'odb_send_timeouts_total'), slowReaders);
  // Fast clients are served as before.
  await oneMiBLatencies(`http://${strictFe.addresses.http}`, 2);
});
