// Stream mode learning its peers (`ODB_CONNECT=*`) under steady load: keep-alive connections are
// opened once and reused for as long as the load lasts, so a connection that went plain before
// the probe answered must still end up speaking ODB. Real processes (unmodified fixtures under
// `--import odb/register`), bytes checked by SHA-256, what crossed the intermediate by the
// kernel's count of bytes it read.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Agent } from 'node:http';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from '../../dev/harness/free-port.js';
import { streamFixture } from '../../dev/harness/stream-chain.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { workspace } from '../helpers/fixtures.js';
import { get } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { repoRoot } from '../helpers/repo.js';
import { PeerGroup, bytesRead, odbEnv, storePing, type Peer } from '../helpers/stream.js';

const run = promisify(execFile);
const ws = workspace('odb-stream-peers-');
const size = 1024 * 1024;
const peers = new PeerGroup();

before(() => {
  ws.file(`f${size}.bin`, size, 5);
});

after(async () => {
  await peers.stopAll();
  ws.cleanup();
});

const peer = (name: string, file: string, env: Record<string, string>, odb = true): Promise<Peer> =>
  peers.start(name, file, env, odb);

/**
 * BE (file server, ODB port) ← IS (http-proxy, `ODB_CONNECT=*`) ← FE (http-proxy, the IS listed).
 * `isEnv`: more settings of the IS.
 */
async function learningChain(
  isEnv: Record<string, string>,
): Promise<{ be: Peer; is: Peer; fe: Peer; bePort: number; isStore: string }> {
  const [bePort, isPort, isStorePort] = [await freePort(), await freePort(), await freePort()];
  const isStore = `127.0.0.1:${isStorePort}`;
  const be = await peer(
    'be',
    'be-files.mjs',
    odbEnv(ws.keyFile, { PORT: String(bePort), ODB_LISTEN: String(bePort), FILES_DIR: ws.dir }),
  );
  const is = await peer(
    'is',
    'is-proxy.mjs',
    odbEnv(ws.keyFile, {
      PORT: String(isPort),
      UPSTREAM: `http://127.0.0.1:${bePort}`,
      ODB_LISTEN: String(isPort),
      ODB_CONNECT: '*',
      ODB_STORE_LISTEN: isStore,
      ...isEnv,
    }),
  );
  const fe = await peer(
    'fe',
    'is-proxy.mjs',
    odbEnv(ws.keyFile, {
      UPSTREAM: `http://127.0.0.1:${isPort}`,
      ODB_CONNECT: `127.0.0.1:${isPort}`,
    }),
  );
  return { be, is, fe, bePort, isStore };
}

/**
 * Back-to-back GETs on one keep-alive connection (maxSockets 1) for `warmMs`, every body checked;
 * then `measured` more, returning the share of their body bytes the IS read.
 */
async function steadyLoad(
  url: string,
  is: Peer,
  warmMs: number,
  measured: number,
): Promise<{ share: number; requests: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const expected = syntheticSha256(5, 0, size);
  let requests = 0;
  const once = async (): Promise<void> => {
    const r = await get(url, { agent });
    assert.equal(r.status, 200);
    assert.ok(r.complete);
    assert.equal(r.sha256, expected, `request ${requests}: bytes`);
    requests++;
  };
  try {
    const warmUntil = Date.now() + warmMs;
    while (Date.now() < warmUntil) await once();
    const before = bytesRead(is.child.pid!);
    for (let i = 0; i < measured; i++) await once();
    return { share: (bytesRead(is.child.pid!) - before) / (measured * size), requests };
  } finally {
    agent.destroy();
  }
}

test('ODB_CONNECT=*: a busy keep-alive connection opened before the probe answered is retired and the load switches to ODB', async (t) => {
  // No probe wait: the first connection to the BE is plain for sure, and stays in use.
  const c = await learningChain({ ODB_PROBE_WAIT: '0' });
  const url = `http://127.0.0.1:${c.fe.port}/f${size}.bin`;
  const { share, requests } = await steadyLoad(url, c.is, 1500, 10);
  assert.ok(
    share < 0.01,
    `after ${requests} requests the IS still read ${(share * 100).toFixed(1)} % of the body bytes`,
  );
  const ping = await storePing(c.isStore);
  t.diagnostic(
    `after ${requests - 10} requests in 1.5 s, the IS read ${(share * 100).toFixed(3)} % of the next 10 bodies; plain connections retired: ${ping.plainRetired}`,
  );
  assert.ok((ping.plainRetired ?? 0) >= 1, `plain connections retired: ${ping.plainRetired}`);
  assert.equal(ping.probeWaits, 0);
});

test('ODB_CONNECT=*: the first connection to a new peer waits for the probe, so a long-lived connection speaks ODB from the start', async () => {
  // A TCP relay learns its upstream; its one connection per client lasts as long as the client's.
  const [backPort, relayPort, relayStorePort] = [
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  await peer(
    'line-echo',
    'line-echo.mjs',
    odbEnv(ws.keyFile, { PORT: String(backPort), ODB_LISTEN: String(backPort) }),
  );
  const relayStore = `127.0.0.1:${relayStorePort}`;
  const relay = await peer(
    'relay',
    'tcp-relay.mjs',
    odbEnv(ws.keyFile, {
      PORT: String(relayPort),
      UPSTREAM: `127.0.0.1:${backPort}`,
      ODB_LISTEN: String(relayPort),
      ODB_CONNECT: '*',
      ODB_STORE_LISTEN: relayStore,
      // Generous here (a loaded test machine); the default is docs/stream-mode.md's.
      ODB_PROBE_WAIT: '2s',
    }),
  );
  const lines = [10, 200_000, 5, 3_000_000, 70_000];
  const before = bytesRead(relay.child.pid!);
  const { stdout } = await run(
    process.execPath,
    ['--import', 'odb/register', streamFixture('line-client.mjs')],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        ...odbEnv(ws.keyFile, {
          ODB_CONNECT: `127.0.0.1:${relayPort}`,
          PORT: String(relayPort),
          LINES: lines.join(','),
        }),
      },
      timeout: 30_000,
    },
  );
  const client = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    lengths: number[];
    allX: boolean;
  };
  assert.deepEqual(client.lengths, lines);
  assert.ok(client.allX);
  const read = bytesRead(relay.child.pid!) - before;
  const total = lines.reduce((a, b) => a + b);
  assert.ok(read < 0.01 * total, `the relay read ${read} bytes of ${total}`);
  const ping = await storePing(relayStore);
  assert.equal(ping.probeWaits, 1);
  assert.equal(ping.probeWaitsExpired, 0);
});

test('ODB_CONNECT=*: when a learned port changes owner, one connection fails and the next asks again', async () => {
  const c = await learningChain({});
  const url = `http://127.0.0.1:${c.fe.port}/f${size}.bin`;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    // Until the IS has learned that the BE speaks ODB (`Connection: close` makes every request
    // a new connection through both proxies, so this does not depend on retiring connections).
    await eventually(
      async () => {
        const before = bytesRead(c.is.child.pid!);
        const r = await get(url, { headers: { connection: 'close' } });
        assert.equal(r.sha256, syntheticSha256(5, 0, size));
        return bytesRead(c.is.child.pid!) - before < 0.01 * size;
      },
      10_000,
      'the IS to bypass the body',
    );
    // The port now belongs to a plain server: the IS's verdict (speaks ODB) is wrong.
    await c.be.stop();
    await peer('plain-be', 'be-files.mjs', { PORT: String(c.bePort), FILES_DIR: ws.dir }, false);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await get(url, { agent });
      statuses.push(r.status);
      if (r.status === 200) assert.equal(r.sha256, syntheticSha256(5, 0, size));
    }
    // At most the first fails (its hello went to a plain server); then the verdict is learned again.
    assert.ok(
      statuses.slice(1).every((s) => s === 200),
      `statuses ${statuses.join(' ')}`,
    );
    const ping = await storePing(c.isStore);
    assert.ok((ping.helloRefused ?? 0) >= 1, `refused hellos: ${ping.helloRefused}`);
  } finally {
    agent.destroy();
  }
});
