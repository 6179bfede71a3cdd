// Stream mode end to end: every tier is an unmodified program (plain Node http, http-proxy,
// express, fastify, a TCP relay) started with `node --import odb/register`; the client is curl or
// Node. Bytes are checked by SHA-256; what crossed the intermediate is the kernel's count of bytes
// it read (/proc/<pid>/io).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from '../../dev/harness/free-port.js';
import { streamFixture, type StreamPrograms } from '../../dev/harness/stream-chain.js';
import {
  FrameDecoder,
  FrameType,
  encodeFrameHeader,
  encodeRealFrames,
} from '../../src/protocol/frame.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { get } from '../helpers/http.js';
import { workspace } from '../helpers/fixtures.js';
import { eventually } from '../helpers/net.js';
import { repoRoot } from '../helpers/repo.js';
import { PeerGroup, bytesRead, odbEnv, rssBytes, storePing, type Peer } from '../helpers/stream.js';

const run = promisify(execFile);
const ws = workspace('odb-stream-');
const sizes = [64 * 1024, 256 * 1024, 1024 * 1024, 8 * 1024 * 1024];
const peers = new PeerGroup();

before(() => {
  for (const size of sizes) ws.file(`f${size}.bin`, size, 5);
  ws.file('small.bin', 1000, 5);
});

after(async () => {
  await peers.stopAll();
  ws.cleanup();
});

const peer = (name: string, file: string, env: Record<string, string>, odb = true): Promise<Peer> =>
  peers.start(name, file, env, odb);

/**
 * The http-proxy fixture (with --import) on a fresh port, proxying to port `upstream` and
 * configured to speak ODB to port `odbPeer`.
 */
async function proxyPeer(name: string, odbPeer: number, upstream: number): Promise<Peer> {
  return peer(
    name,
    'is-proxy.mjs',
    odbEnv(ws.keyFile, {
      ODB_CONNECT: `127.0.0.1:${odbPeer}`,
      UPSTREAM: `http://127.0.0.1:${upstream}`,
    }),
  );
}

/** The plain file server with --import, serving the test files on `port` as an ODB port. */
function fileServerPeer(
  name: string,
  port: number,
  extra: Record<string, string> = {},
): Promise<Peer> {
  return peer(
    name,
    'be-files.mjs',
    odbEnv(ws.keyFile, {
      PORT: String(port),
      ODB_LISTEN: String(port),
      FILES_DIR: ws.dir,
      ...extra,
    }),
  );
}

/** BE (plain file server) ← IS (`isProgram`) ← FE (http-proxy, client-facing), all with --import. */
async function chain(
  isProgram: string,
  isEnv: Record<string, string> = {},
  env: Record<string, string> = {},
): Promise<StreamPrograms> {
  return peers.startChain({ keyFile: ws.keyFile, filesDir: ws.dir, isProgram, isEnv, env });
}

async function curlSha256(url: string): Promise<{ sha256: string; size: number; code: number }> {
  // The body goes to sha256sum on stdout; status and size go to stderr, so they cannot interleave.
  const { stdout, stderr } = await run('bash', [
    '-o',
    'pipefail',
    '-c',
    `curl -sS -w '%{stderr}%{http_code} %{size_download}' '${url}' | sha256sum`,
  ]);
  const [code = '', size = ''] = stderr.trim().split(/\s+/);
  return { sha256: stdout.split(' ')[0]!, code: Number(code), size: Number(size) };
}

/** Requests every size through `c`; returns the share of body bytes the IS process read. */
async function throughChain(c: StreamPrograms, rounds = 3): Promise<number> {
  const before = bytesRead(c.is.child.pid!);
  let body = 0;
  for (let i = 0; i < rounds; i++) {
    for (const size of sizes) {
      const r = await get(c.url(`/f${size}.bin`));
      assert.ok(r.complete, `${size}: complete`);
      assert.equal(r.sha256, syntheticSha256(5, 0, size), `${size}: bytes`);
      body += size;
    }
  }
  return (bytesRead(c.is.child.pid!) - before) / body;
}

test('http-proxy IS: ≥ 99 % of body bytes never reach it, the client gets exact bytes (Node and curl)', async () => {
  const c = await chain('is-proxy.mjs');
  const registeredBefore = (await storePing(c.beStore)).registered;
  const share = await throughChain(c);
  assert.ok(share < 0.01, `the IS read ${(share * 100).toFixed(2)} % of the body bytes`);
  // The file server writes 64 KiB at a time; consecutive writes share a payload (by default up to
  // 4 MiB, sent once the writes pause for 20 ms), so there are far fewer payloads than writes.
  const writes = 3 * sizes.reduce((n, size) => n + size / (64 * 1024), 0);
  const payloads = (await storePing(c.beStore)).registered - registeredBefore;
  assert.ok(payloads <= writes / 4, `${payloads} payloads for ${writes} writes`);
  const viaCurl = await curlSha256(c.url(`/f${1024 * 1024}.bin`));
  assert.deepEqual(viaCurl, {
    sha256: syntheticSha256(5, 0, 1024 * 1024),
    code: 200,
    size: 1024 * 1024,
  });
  const small = await get(c.url('/small.bin'));
  assert.equal(small.sha256, syntheticSha256(5, 0, 1000));
});

test('an IS that reads every body gets exact bytes (fetched on touch) and the right hash', async () => {
  const c = await chain('is-hash.mjs');
  for (const size of sizes) {
    const r = await get(c.url(`/f${size}.bin`));
    assert.equal(r.sha256, syntheticSha256(5, 0, size));
    assert.equal(r.headers['x-body-sha256'], syntheticSha256(5, 0, size));
  }
});

test('express IS streaming the upstream response: the same ≥ 99 % bypass', async () => {
  const c = await chain('is-express.mjs');
  const share = await throughChain(c);
  assert.ok(share < 0.01, `the IS read ${(share * 100).toFixed(2)} % of the body bytes`);
});

test('fastify + @fastify/reply-from IS (undici): exact bytes; bypass measured', async (t) => {
  const c = await chain('is-fastify.mjs');
  const faultBytes = async (): Promise<number> => (await storePing(c.isStore)).faultBytes ?? 0;
  const fetchedBefore = await faultBytes();
  const share = await throughChain(c, 1); // asserts exact bytes (SHA-256) for every size
  const body = sizes.reduce((a, b) => a + b, 0);
  const fetched = ((await faultBytes()) - fetchedBefore) / body;
  t.diagnostic(`fastify IS read ${(share * 100).toFixed(1)} % of the body bytes`);
  t.diagnostic(`fastify IS fetched ${(fetched * 100).toFixed(1)} % of them as page fills`);
  // undici copies socket data into its WebAssembly parser's memory, so every page is fetched:
  // correct bytes, no bypass (docs/stream-mode.md says what bypass through undici would take).
  // So the bodies did reach the IS as descriptors (its agent filled their pages: all of them,
  // none twice, measured 100.0 %), and what the IS read(2) is those fills plus the frames and
  // the fills' HTTP heads (measured 101 %). Below 99 % undici would bypass after all (then this
  // test and the docs should say ≥ 99 % bypass, as for express); above 105 % bytes reach the IS
  // twice (fetched and also relayed real, or pages filled again).
  assert.ok(
    fetched >= 0.99 && fetched <= 1.01,
    `the IS agent fetched ${(fetched * 100).toFixed(1)} % of the body bytes`,
  );
  assert.ok(
    share >= 0.99 && share < 1.05,
    `the IS read ${(share * 100).toFixed(1)} % of the body bytes`,
  );
});

test('a plain TCP relay forwards descriptors, and a line-based protocol works through it', async () => {
  const [backPort, relayPort] = [await freePort(), await freePort()];
  await peer(
    'line-echo',
    'line-echo.mjs',
    odbEnv(ws.keyFile, {
      PORT: String(backPort),
      ODB_LISTEN: String(backPort),
      ODB_STORE_LISTEN: '127.0.0.1:0',
    }),
  );
  const relay = await peer(
    'relay',
    'tcp-relay.mjs',
    odbEnv(ws.keyFile, {
      PORT: String(relayPort),
      ODB_LISTEN: String(relayPort),
      ODB_CONNECT: `127.0.0.1:${backPort}`,
      UPSTREAM: `127.0.0.1:${backPort}`,
    }),
  );
  // The client is an ODB process too (a Node script under --import), so the relay sees frames.
  const lines = [10, 200_000, 5, 3_000_000, 70_000];
  await runLineClient(relayPort, [10, 70_000]); // warm-up: the relay's first connection loads code
  const before = bytesRead(relay.child.pid!);
  const client = await runLineClient(relayPort, lines);
  assert.deepEqual(client.lengths, lines);
  assert.ok(client.allX);
  const read = bytesRead(relay.child.pid!) - before;
  assert.ok(
    read < 0.01 * lines.reduce((a, b) => a + b),
    `the relay read ${read} bytes of the lines`,
  );
});

/** A Node client under --import that speaks the line protocol through `port`. */
async function runLineClient(
  port: number,
  lines: number[],
): Promise<{ lengths: number[]; allX: boolean }> {
  const { stdout } = await run(
    process.execPath,
    ['--import', 'odb/register', streamFixture('line-client.mjs')],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        ...odbEnv(ws.keyFile, {
          ODB_CONNECT: `127.0.0.1:${port}`,
          PORT: String(port),
          LINES: lines.join(','),
        }),
      },
      timeout: 30_000,
    },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { lengths: number[]; allX: boolean };
}

test('mixed peers: plain clients, nginx and plain Node next to ODB processes stay byte-identical', async () => {
  const [bePort, plainPort] = [await freePort(), await freePort()];
  await fileServerPeer('be', bePort);
  await peer('plain-be', 'be-files.mjs', { PORT: String(plainPort), FILES_DIR: ws.dir }, false);
  // A plain client (no hello) on an ODB port: served plain.
  const direct = await get(`http://127.0.0.1:${bePort}/f${1024 * 1024}.bin`);
  assert.equal(direct.sha256, syntheticSha256(5, 0, 1024 * 1024));
  // An ODB proxy whose upstream is not listed as ODB: plain towards it.
  const is = await proxyPeer('is', bePort, plainPort);
  const viaPlain = await get(`http://127.0.0.1:${is.port}/f${256 * 1024}.bin`);
  assert.equal(viaPlain.sha256, syntheticSha256(5, 0, 256 * 1024));
  // nginx (plain, unmodified) in front of the ODB back end.
  const { startNginx } = await import('../../dev/harness/nginx.js');
  const nginx = await startNginx({ upstreams: [`127.0.0.1:${bePort}`] });
  try {
    const r = await get(`http://${nginx.addresses.http}/f${8 * 1024 * 1024}.bin`);
    assert.equal(r.sha256, syntheticSha256(5, 0, 8 * 1024 * 1024));
  } finally {
    await nginx.stop();
  }
  // A peer listed as ODB that is not: the connection fails visibly (502), never silently.
  const misconfigured = await proxyPeer('misconfigured', plainPort, plainPort);
  const refused = await get(`http://127.0.0.1:${misconfigured.port}/small.bin`);
  assert.equal(refused.status, 502);
});

test('stand-alone mode: a peer that answers a probe hello speaks ODB from then on', async () => {
  const c = await chain('is-proxy.mjs', { ODB_CONNECT: '*' });
  // The first connection to the BE waits (briefly) for the probe, and a plain one is retired once
  // the BE is known to speak ODB (test/stream-mode/peers.test.ts tests each under steady load).
  const first = await get(c.url('/small.bin'));
  assert.equal(first.sha256, syntheticSha256(5, 0, 1000));
  const share = await throughChain(c, 2);
  assert.ok(
    share < 0.01,
    `after the probe, the IS read ${(share * 100).toFixed(1)} % of body bytes`,
  );
});

test('frame reader on a live connection: random splits deliver exact bytes; a bad CRC closes only that connection', async () => {
  const port = await freePort();
  const echo = await peer(
    'echo',
    'line-echo.mjs',
    odbEnv(ws.keyFile, { PORT: String(port), ODB_LISTEN: String(port) }),
  );
  const hello = Buffer.concat([encodeFrameHeader(FrameType.hello, 4), Buffer.from([1, 1, 0, 0])]);
  const request = Buffer.concat([hello, ...encodeRealFrames(Buffer.from('5\n123\n'))]);
  for (let trial = 0; trial < 20; trial++) {
    const received = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const decoder = new FrameDecoder();
      const parts: Buffer[] = [];
      let helloSeen = false;
      socket.on('data', (d: Buffer) =>
        decoder.push(d, (e) => {
          if (e.type === 'hello') helloSeen = true;
          if (e.type === 'real') parts.push(Buffer.from(e.bytes));
          const all = Buffer.concat(parts);
          if (helloSeen && all.length === 5 + 1 + 123 + 1) {
            socket.destroy();
            resolve(all);
          }
        }),
      );
      socket.on('error', reject);
      // Random splits, written with pauses so that they arrive as separate reads.
      let at = 0;
      const next = (): void => {
        if (at >= request.length) return;
        const n = 1 + Math.floor(Math.random() * 7);
        socket.write(request.subarray(at, at + n));
        at += n;
        setTimeout(next, 1);
      };
      next();
    });
    assert.equal(received.toString(), `${'x'.repeat(5)}\n${'x'.repeat(123)}\n`);
  }
  const bad = Buffer.concat([hello, encodeFrameHeader(FrameType.real, 3)]);
  bad[bad.length - 1]! ^= 0xff; // corrupt the CRC of the second frame header
  const closed = await new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('close', () => resolve(true));
    socket.on('error', () => {});
    socket.resume(); // read (the hello answer), or the peer's close is never seen
    socket.write(Buffer.concat([bad, Buffer.from('abc')]));
  });
  assert.ok(closed);
  assert.equal(echo.child.exitCode, null, 'the process lives');
  // The log line may reach us just after the close does.
  await eventually(() => /ODB_ERR_BAD_CRC/.test(echo.stderr()), 5000, 'the bad CRC to be logged');
});

test('owner killed while an IS holds lazy buffers: affected responses fail visibly, others continue', async () => {
  const [aPort, bPort, isPort] = [await freePort(), await freePort(), await freePort()];
  const beA = await fileServerPeer('be-a', aPort, {
    ODB_FETCH_TIMEOUT: '500ms',
    ODB_FETCH_RETRIES: '1',
  });
  await fileServerPeer('be-b', bPort);
  await peer(
    'is',
    'is-hold.mjs',
    odbEnv(ws.keyFile, {
      PORT: String(isPort),
      ODB_LISTEN: String(isPort),
      ODB_CONNECT: `127.0.0.1:${aPort},127.0.0.1:${bPort}`,
      UPSTREAM_A: `http://127.0.0.1:${aPort}`,
      UPSTREAM_B: `http://127.0.0.1:${bPort}`,
      HOLD_MS: '700',
    }),
  );
  const fe = await peer(
    'fe',
    'is-proxy.mjs',
    odbEnv(ws.keyFile, {
      ODB_CONNECT: `127.0.0.1:${isPort}`,
      UPSTREAM: `http://127.0.0.1:${isPort}`,
      ODB_FETCH_TIMEOUT: '500ms',
      ODB_FETCH_RETRIES: '1',
    }),
  );
  const url = (route: string, size: number): string =>
    `http://127.0.0.1:${fe.port}/${route}/f${size}.bin`;
  const affected = [get(url('a', 1024 * 1024)), get(url('a', 256 * 1024))];
  await new Promise((r) => setTimeout(r, 250)); // the IS now holds the bodies as lazy buffers
  beA.child.kill('SIGKILL');
  for (const r of await Promise.allSettled(affected)) {
    if (r.status === 'rejected') continue; // the connection failed: visible
    assert.ok(!r.value.complete || r.value.status >= 500, 'an affected response ended cleanly');
    if (r.value.complete) assert.notEqual(r.value.status, 200);
  }
  for (const size of sizes) {
    const r = await get(url('b', size));
    assert.ok(r.complete);
    assert.equal(r.sha256, syntheticSha256(5, 0, size));
  }
});

test('without the addon (ODB_NATIVE=off): each tier says so once, bytes are exact, the owner store empties', async () => {
  const c = await chain('is-proxy.mjs', {}, { ODB_NATIVE: 'off' });
  const share = await throughChain(c, 2);
  // Virtual data is fetched on arrival: correct, no bypass.
  assert.ok(share > 0.9, `the IS read ${(share * 100).toFixed(1)} % of the body bytes`);
  const curl = await curlSha256(c.url(`/f${1024 * 1024}.bin`));
  assert.equal(curl.sha256, syntheticSha256(5, 0, 1024 * 1024));
  for (const tier of [c.be, c.is, c.fe]) {
    const warnings = tier
      .stderr()
      .match(/lazy buffers unavailable \(the native addon is switched off/g);
    assert.equal(warnings?.length, 1, `${tier.name}: ${tier.stderr()}`);
  }
  // Own payloads in SharedArrayBuffers still go when their references come back.
  await eventually(
    async () => (await storePing(c.beStore)).entries === 0,
    20_000,
    'the BE store to empty',
  );
});

// The default run checks that references come back (the owner's store empties) over a thousand
// requests; `npm run test:soak` (ODB_SOAK_REQUESTS=100000) also holds every tier's RSS to 20 %
// of its value after warm-up, which needs a long run to mean anything.
const soakRequests = Number(process.env.ODB_SOAK_REQUESTS ?? 1000);
const checkRss = process.env.ODB_SOAK_REQUESTS !== undefined;

test(`${soakRequests} requests of 256 KiB: every reference comes back${checkRss ? ', RSS stays flat' : ''}`, async (t) => {
  const c = await chain('is-proxy.mjs');
  const tiers = { BE: c.be, IS: c.is, FE: c.fe };
  // The baseline comes after V8 has sized its heaps for this load: under sustained allocation it
  // grows an application isolate's young generation (up to 2 × 16 MiB semi-spaces), a one-time
  // step of up to ~30 MiB (the agent's is capped). A leak shows as growth after it.
  const warm = Math.min(20_000, Math.floor(soakRequests / 5));
  const sampleEvery = Math.max(100, Math.floor(soakRequests / 200));
  // RSS moves with what is in flight: the owner's store holds each payload until its holders'
  // lazy buffers are collected, from a few to ~140 payloads of 256 KiB at any instant. So the
  // post-warm-up value is the median of the first samples after warm-up, not one instant.
  const baselineSamples = 10;
  const early: Record<string, number>[] = [];
  const peak: Record<string, number> = {};
  const sample = (): Record<string, number> =>
    Object.fromEntries(Object.entries(tiers).map(([name, p]) => [name, rssBytes(p.child.pid!)]));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < soakRequests) {
      const i = next++;
      const r = await get(c.url(`/f${256 * 1024}.bin`));
      assert.ok(r.complete && r.bytes === 256 * 1024);
      if (i % 100 === 0) assert.equal(r.sha256, syntheticSha256(5, 0, 256 * 1024));
      // "Stays within" is checked along the way, not only at the end: a peak that later falls
      // back still counts.
      if (i > warm && i % sampleEvery === 0) {
        const now = sample();
        if (early.length < baselineSamples) early.push(now);
        for (const [name, rss] of Object.entries(now)) peak[name] = Math.max(peak[name] ?? 0, rss);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  if (checkRss) {
    assert.equal(early.length, baselineSamples);
    for (const [name, rss] of Object.entries(sample())) peak[name] = Math.max(peak[name] ?? 0, rss);
    const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
    const over: string[] = [];
    for (const name of Object.keys(tiers)) {
      const values = early.map((s) => s[name]!).sort((a, b) => a - b);
      const baseline = values[Math.floor(values.length / 2)]!;
      const ratio = peak[name]! / baseline;
      t.diagnostic(
        `${name} RSS after warm-up ${mib(baseline)} MiB (samples ${mib(values[0]!)}–${mib(values.at(-1)!)}), peak ${mib(peak[name]!)} MiB (${ratio.toFixed(3)}×)`,
      );
      if (ratio > 1.2) over.push(`${name} peaked at ${mib(peak[name]!)} MiB vs ${mib(baseline)}`);
    }
    assert.deepEqual(over, [], 'RSS within 20 % of its post-warm-up value');
  }
  // Emptied, and its payloads' memory freed with them (not left for a collection).
  await eventually(
    async () => {
      const ping = await storePing(c.beStore);
      return ping.entries === 0 && ping.ownPayloadBytes === 0;
    },
    20_000,
    'the BE store to empty and free its payload memory',
  );
});
