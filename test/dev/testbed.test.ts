// The testbed really separates hosts: what the IS process relayed is what crossed is1's interface,
// impairments really delay and drop frames, and tearing down leaves nothing behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startChain } from '../../dev/harness/chain.js';
import { runLoadProcess } from '../../src/demo/load-process.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import {
  clearImpairment,
  impair,
  interfaceBytes,
  onHost,
  testbedDown,
  testbedUp,
} from '../../dev/harness/testbed.js';
import { workspace } from '../helpers/fixtures.js';

const run = promisify(execFile);
const ws = workspace();
const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (network namespaces)';

before(async () => {
  if (root) await testbedUp();
});

after(async () => {
  if (root) await testbedDown();
  ws.cleanup();
});

async function pingMs(count: number): Promise<{ received: number; minMs: number }> {
  const { stdout } = await run('ip', [
    'netns',
    'exec',
    'odb-client',
    'ping',
    '-c',
    String(count),
    '-i',
    '0.05',
    '-W',
    '1',
    '-q',
    '10.77.0.11',
  ]).catch((err: { stdout: string }) => ({ stdout: err.stdout }));
  const received = Number(/(\d+) received/.exec(stdout)?.[1] ?? 0);
  const minMs = Number(/= ([\d.]+)\//.exec(stdout)?.[1] ?? NaN);
  return { received, minMs };
}

test('bytes on is1 interface match what the IS process relayed', { skip }, async () => {
  const chain = await startChain({
    mode: 'vanilla',
    root: ws.dir,
    logLevel: 'warn',
    place: (role) => onHost(role),
  });
  try {
    const is = chain.intermediates[0]!;
    const own = async (): Promise<{ rx: number; tx: number }> => {
      const s = await scrape(is.addresses.metrics!, chain.placements.is1!.prefix);
      return {
        rx: metricValue(s, 'odb_socket_bytes_total', { direction: 'received' }),
        tx: metricValue(s, 'odb_socket_bytes_total', { direction: 'sent' }),
      };
    };
    const [ifaceBefore, ownBefore] = [await interfaceBytes('is1'), await own()];
    const result = await runLoadProcess(
      [
        '--url',
        chain.url('/bytes/1048576'),
        '--rate',
        '40',
        '--duration',
        '1s',
        '--warmup',
        '0s',
        '--expect-synthetic',
      ],
      undefined,
      onHost('client').prefix,
    );
    assert.equal(result.errors, 0);
    const [ifaceAfter, ownAfter] = [await interfaceBytes('is1'), await own()];
    for (const dir of ['rx', 'tx'] as const) {
      const wire = ifaceAfter[dir] - ifaceBefore[dir];
      const socket = ownAfter[dir] - ownBefore[dir];
      assert.ok(socket > 30 * 1048576, `${dir}: IS moved ${socket} bytes`);
      // The wire carries the same bytes plus Ethernet/IP/TCP headers and the other direction's ACKs.
      assert.ok(
        wire >= socket && wire <= socket * 1.06 + 65536,
        `${dir}: interface ${wire} vs socket ${socket}`,
      );
    }
    // Hosts are separate: the BE's traffic never shows on the client's interface.
    const client = await interfaceBytes('client');
    assert.ok(client.rx < (ifaceAfter.rx - ifaceBefore.rx) * 1.1);
  } finally {
    await chain.stop();
  }
});

test('impairment delays and drops frames on one host link, and clears', { skip }, async () => {
  const base = await pingMs(5);
  assert.equal(base.received, 5);
  await impair('fe', 15, 0);
  const delayed = await pingMs(5);
  assert.ok(
    delayed.minMs >= 30 && delayed.minMs < 200,
    `RTT with 15 ms each way: ${delayed.minMs} ms`,
  );
  await impair('fe', 0, 0.5);
  const lossy = await pingMs(40);
  assert.ok(
    lossy.received > 0 && lossy.received < 36,
    `${lossy.received}/40 pings answered with 50 % loss each way`,
  );
  await clearImpairment('fe');
  const cleared = await pingMs(5);
  assert.equal(cleared.received, 5);
  assert.ok(cleared.minMs < 10);
});

test('tearing down leaves no namespace, link or process behind', { skip }, async () => {
  const chain = await startChain({
    mode: 'vanilla',
    root: ws.dir,
    logLevel: 'warn',
    place: (role) => onHost(role),
  });
  const pids = chain.processes.flatMap((p) => p.pids());
  await impair('be', 1, 0);
  await testbedDown();
  const { stdout: namespaces } = await run('ip', ['netns', 'list']);
  assert.doesNotMatch(namespaces, /odb-/);
  const { stdout: links } = await run('ip', ['-o', 'link']);
  assert.doesNotMatch(links, /\b(v|lk|lb)-(client|fe|is1|is2|be)\b/);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), `process ${pid} survived`);
  const { stdout: ps } = await run('ps', ['-eo', 'args']);
  assert.doesNotMatch(ps, /link-emulator/);
  await chain.stop(); // already gone; must not throw
  await testbedUp(); // for the after() hook's symmetry
});
