// The library examples run as documented: an ordinary back end and a hand-written proxy, made
// ODB-aware, with a plain `odb is` between them.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { freePort, waitForPort } from '../../dev/harness/free-port.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { get } from '../helpers/http.js';
import { sha256 } from '../helpers/net.js';
import { workspace } from '../helpers/fixtures.js';

const ws = workspace();
const children: ChildProcess[] = [];
let is: OdbProcess;
let fePort: number;

function example(name: string, args: string[]): ChildProcess {
  const path = fileURLToPath(new URL(`../../examples/${name}.js`, import.meta.url));
  const child = spawn(process.execPath, [path, ...args], { stdio: 'ignore' });
  children.push(child);
  return child;
}

before(async () => {
  ws.file('video.bin', 3_000_000, 31);
  const [bePort, storePort] = [await freePort(), await freePort()];
  example('backend', [String(bePort), String(storePort), ws.keyFile, ws.dir]);
  await waitForPort('127.0.0.1', bePort);
  is = await startOdbProcess('is', [
    'is',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://127.0.0.1:${bePort}`,
    '--metrics-listen',
    '127.0.0.1:0',
    '--log-level',
    'warn',
  ]);
  fePort = await freePort();
  example('frontend', [String(fePort), is.addresses.http!, ws.keyFile, `127.0.0.1:${storePort}`]);
  await waitForPort('127.0.0.1', fePort);
});

after(async () => {
  for (const c of children) c.kill();
  await is?.stop();
  ws.cleanup();
});

test('examples: a file and a streamed report arrive exact, and bypass the IS', async () => {
  const before = await scrape(is.addresses.metrics!);
  const file = await get(`http://127.0.0.1:${fePort}/files/video.bin`);
  assert.ok(file.complete);
  assert.equal(file.sha256, syntheticSha256(31, 0, 3_000_000));
  const report = await get(`http://127.0.0.1:${fePort}/report`);
  let expected = '';
  for (let row = 0; row < 20_000; row++) expected += `${row},${row * row},${'x'.repeat(40)}\n`;
  assert.equal(report.sha256, sha256(expected));
  assert.equal(report.headers['content-type'], 'text/csv');
  const after = await scrape(is.addresses.metrics!);
  const relayed =
    metricValue(after, 'odb_socket_bytes_total', { peer: 'upstream', direction: 'received' }) -
    metricValue(before, 'odb_socket_bytes_total', { peer: 'upstream', direction: 'received' });
  assert.ok(relayed < 2048, `IS received ${relayed} bytes for two large responses`);
});
