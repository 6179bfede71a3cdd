// Tier processes under signals: SIGTERM drains (responses in flight finish byte-exact, new
// connections are refused, exit 0), a second SIGTERM exits at once, the drain timeout bounds the
// wait, and SIGHUP reloads the key file without ever killing a tier.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startChain, type Chain } from '../../dev/harness/chain.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import type { OdbProcess } from '../../src/demo/tier-process.js';
import { writeKeyFile } from '../../src/core/keys/key-file-writer.js';
import { generateClusterKey, type ClusterKey } from '../../src/core/keys/keyring.js';
import { defaultSyntheticSeed, syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { workspace } from '../helpers/fixtures.js';
import { get, type Received } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { startBackendProcess } from '../helpers/tiers.js';

const ws = workspace();
after(() => ws.cleanup());

const largeBytes = 64 * 1024 * 1024;
const largeSha = syntheticSha256(defaultSyntheticSeed, 0, largeBytes);

/** How a process ended, and when (ms since `since`). */
function exitOf(
  p: OdbProcess,
  since: number,
): Promise<{ code: number | null; signal: string | null; at: number }> {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      resolve({ code: p.child.exitCode, signal: p.child.signalCode, at: 0 });
      return;
    }
    p.child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() - since }));
  });
}

/** Resolves true when a TCP connection to `address` is refused (nothing listens any more). */
function refused(address: string): Promise<boolean> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.split(':').pop()];
  return new Promise((resolve) => {
    const socket = connect(Number(port), host);
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

const stoppingLine = (line: { msg?: string }): boolean => /stopping$/.test(line.msg ?? '');

/**
 * Reads a 64 MiB response through `chain`; at the first bytes every tier gets SIGTERM, and the
 * client then reads nothing for `stallMs` (longer than the old fixed 5 s exit) before reading on.
 */
async function drainDuringSlowRead(chain: Chain, stallMs: number): Promise<void> {
  const tiers = [chain.fe, chain.intermediates[0] as OdbProcess, chain.be];
  const since = Date.now();
  const exits = tiers.map((t) => exitOf(t, since));
  let signalled: Promise<void> = Promise.resolve();
  const received: Received = await get(chain.url(`/bytes/${largeBytes}`), {
    agent: false,
    stallMs,
    onFirstBytes: () => {
      for (const t of tiers) t.child.kill('SIGTERM');
      signalled = (async () => {
        for (const t of tiers) {
          await t.waitForLog(stoppingLine);
          // Listeners are closed at the signal: new clients are refused.
          assert.ok(await refused(t.addresses.http!), `${t.name} still accepts`);
          assert.ok(await refused(t.addresses.metrics!), `${t.name} metrics still accept`);
        }
      })();
    },
  });
  await signalled;
  assert.equal(received.status, 200);
  assert.ok(received.complete, 'the response in flight was cut');
  assert.equal(received.bytes, largeBytes);
  assert.equal(received.sha256, largeSha);
  for (const [i, exit] of (await Promise.all(exits)).entries()) {
    assert.deepEqual(
      [exit.code, exit.signal],
      [0, null],
      `${tiers[i]!.name}: ${tiers[i]!.stderr()}`,
    );
  }
}

test('SIGTERM on every tier mid-response: a 64 MiB body read slowly completes byte-exact, new connections are refused, each exits 0', async () => {
  const [odb, vanilla] = await Promise.all([
    startChain({ mode: 'odb', root: ws.dir, keyFile: ws.keyFile, logLevel: 'info' }),
    startChain({ mode: 'vanilla', root: ws.dir, logLevel: 'info' }),
  ]);
  try {
    // Default drain timeout (10 s); in vanilla mode the IS carries the bytes, in odb mode the BE's
    // store does.
    await Promise.all([drainDuringSlowRead(odb, 5500), drainDuringSlowRead(vanilla, 5500)]);
  } finally {
    await Promise.all([odb.stop(), vanilla.stop()]);
  }
});

test('draining: an idle keep-alive connection is closed at the signal, a busy one after its response', async () => {
  const be = await startBackendProcess({ root: ws.dir, logLevel: 'info' });
  const agent = new Agent({ keepAlive: true });
  // One idle connection (its request done), one busy with a large body the client holds back.
  const idle = await idleClient(be.addresses.http!);
  try {
    const url = `http://${be.addresses.http}`;
    const idleClosed = new Promise<number>((resolve) =>
      idle.once('close', () => resolve(Date.now())),
    );
    const since = Date.now();
    const exit = exitOf(be, since);
    let signalledAt = 0;
    const busy = await get(`${url}/bytes/${largeBytes}`, {
      agent,
      stallMs: 1500,
      onFirstBytes: () => {
        signalledAt = Date.now();
        be.child.kill('SIGTERM');
      },
    });
    const busyDoneAt = Date.now();
    assert.ok(busy.complete && busy.sha256 === largeSha, 'busy response byte-exact');
    assert.ok((await idleClosed) - signalledAt < 1000, 'idle connection closed at the signal');
    const { code, at } = await exit;
    assert.equal(code, 0);
    // Node would keep the busy connection alive after its response; the drain closes it, so the
    // process is gone right after the response, not at some timeout.
    assert.ok(since + at - busyDoneAt < 2000, `exited ${since + at - busyDoneAt} ms after`);
  } finally {
    idle.destroy();
    agent.destroy();
    await be.stop();
  }
});

/** A keep-alive connection whose one request is answered: idle from then on. */
async function idleClient(address: string): Promise<Socket> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.split(':').pop()];
  const socket = connect(Number(port), host);
  socket.on('error', () => {});
  socket.write('GET /bytes/10 HTTP/1.1\r\nhost: x\r\n\r\n');
  let text = '';
  await new Promise<void>((resolve) =>
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (/\r\n\r\n[^]{10}$/.test(text)) resolve();
    }),
  );
  assert.match(text, /^HTTP\/1\.1 200 .*keep-alive/is);
  return socket;
}

/** A client that asks for a large body, takes its first bytes and then stops reading. */
async function stuckClient(address: string): Promise<Socket> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.split(':').pop()];
  const socket = connect(Number(port), host);
  socket.on('error', () => {});
  socket.write(`GET /bytes/${largeBytes} HTTP/1.1\r\nhost: x\r\n\r\n`);
  await new Promise((resolve) => socket.once('data', resolve));
  socket.pause();
  return socket;
}

test('a second SIGTERM exits at once; the drain timeout bounds a drain that does not end', async () => {
  const start = (drain: string[]): Promise<OdbProcess> =>
    startBackendProcess({ root: ws.dir, logLevel: 'info', args: drain });
  const [twice, bounded] = await Promise.all([start([]), start(['--drain-timeout', '1s'])]);
  const clients = await Promise.all([twice, bounded].map((p) => stuckClient(p.addresses.http!)));
  try {
    const since = Date.now();
    const exits = [exitOf(twice, since), exitOf(bounded, since)];
    twice.child.kill('SIGTERM');
    bounded.child.kill('SIGTERM');
    await twice.waitForLog(stoppingLine);
    const secondAt = Date.now();
    twice.child.kill('SIGTERM');
    const first = await exits[0]!;
    assert.equal(first.code, 128 + 15, 'a second SIGTERM exits with 143');
    assert.ok(since + first.at - secondAt < 1000, 'at once');
    assert.ok(twice.logs.some((l) => /second SIGTERM/.test(l.msg ?? '')));
    const second = await exits[1]!;
    assert.equal(second.code, 0);
    assert.ok(second.at >= 900 && second.at < 5000, `drain timeout 1 s, exited at ${second.at}`);
    assert.ok(bounded.logs.some((l) => /drain timeout passed/.test(l.msg ?? '')));
  } finally {
    for (const c of clients) c.destroy();
    await Promise.all([twice.stop(), bounded.stop()]);
  }
});

function writeKeys(name: string, keys: readonly ClusterKey[]): string {
  const path = join(ws.dir, name);
  writeKeyFile(path, keys, { replace: true });
  return path;
}

async function hup(p: OdbProcess, outcome: RegExp): Promise<void> {
  const seen = p.logs.length;
  p.child.kill('SIGHUP');
  await eventually(
    () => p.logs.slice(seen).some((l) => outcome.test(l.msg ?? '')),
    10_000,
    `${p.name} to log ${outcome}`,
  );
}

test('SIGHUP reloads the key file: a rotated key is accepted after it, a bad file keeps the old keys, no tier dies', async () => {
  const [k1, k2] = [generateClusterKey(), generateClusterKey()];
  const beKeys = writeKeys('be.key', [k1]);
  const feKeys = writeKeys('fe.key', [k1]);
  const chain = await startChain({
    mode: 'odb',
    root: ws.dir,
    logLevel: 'info',
    beArgs: ['--key-file', beKeys],
    feArgs: ['--key-file', feKeys],
  });
  const large = `/bytes/${1024 * 1024}`;
  const largeOk = async (): Promise<void> => {
    const r = await get(chain.url(large), { agent: false });
    assert.equal(r.status, 200);
    assert.equal(r.sha256, syntheticSha256(defaultSyntheticSeed, 0, 1024 * 1024));
  };
  try {
    await largeOk();
    // The back end now signs with k2 only; the front end does not know k2 yet.
    writeKeys('be.key', [k2]);
    await hup(chain.be, /key file reloaded/);
    // Its descriptors are refused; the request is sent again without the offer: right bytes.
    await largeOk();
    const refused = await scrape(chain.fe.addresses.metrics!);
    assert.equal(metricValue(refused, 'odb_retries_total', { code: 'ODB_ERR_UNKNOWN_KEY' }), 1);
    // The front end learns k2 (verify-only, k1 still first): descriptors signed with k2 verify.
    writeKeys('fe.key', [k1, k2]);
    await hup(chain.fe, /key file reloaded/);
    const delivered = metricValue(refused, 'odb_descriptor_responses_total');
    await largeOk();
    const learned = await scrape(chain.fe.addresses.metrics!);
    assert.equal(metricValue(learned, 'odb_descriptor_responses_total'), delivered + 1);
    assert.equal(metricValue(learned, 'odb_retries_total', { code: 'ODB_ERR_UNKNOWN_KEY' }), 1);
    // A broken file is refused; the keys loaded before stay in use.
    writeFileSync(feKeys, '{"version": 1, "keys": [');
    await hup(chain.fe, /reload failed; keeping the previous keys/);
    await largeOk();
    // A tier without a key file logs and ignores SIGHUP.
    await hup(chain.intermediates[0] as OdbProcess, /SIGHUP ignored/);
    await largeOk();
    const fe = await scrape(chain.fe.addresses.metrics!);
    assert.equal(metricValue(fe, 'odb_key_reloads_total', { result: 'ok' }), 1);
    assert.equal(metricValue(fe, 'odb_key_reloads_total', { result: 'failed' }), 1);
    for (const p of chain.processes as OdbProcess[]) {
      assert.equal(p.child.exitCode, null, `${p.name} died`);
      assert.equal(p.child.signalCode, null, `${p.name} was killed`);
    }
  } finally {
    await chain.stop();
  }
});
