// Lazy buffers written to plain sockets (src/stream-mode/app/plain-write.ts), with real
// processes: a plain file server (BE), http-proxy (IS) and http-proxy as the client-facing FE,
// all under --import odb/register. The FE's client sockets are plain TCP (spliced from the BE's
// store) or TLS (fetched into memory first); either way the bytes must be exact.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../../dev/harness/free-port.js';
import { startNodeProgram } from '../../../dev/harness/node-program.js';
import { streamFixture, type StreamPrograms } from '../../../dev/harness/stream-chain.js';
import { syntheticSha256 } from '../../../src/store/payloads/synthetic.js';
import { workspace } from '../../helpers/fixtures.js';
import { get } from '../../helpers/http.js';
import { eventually } from '../../helpers/net.js';
import { PeerGroup, odbEnv, storePing } from '../../helpers/stream.js';
import { makeTestPki } from '../../helpers/tls.js';

const run = promisify(execFile);
const ws = workspace('odb-plain-write-');
const peers = new PeerGroup();
const sizes = [1024 * 1024, 8 * 1024 * 1024];
let c: StreamPrograms;

before(async () => {
  for (const size of sizes) ws.file(`f${size}.bin`, size, 7);
  // A fetch attempt gives up after 1 s: a client pausing longer must still not be cut.
  c = await peers.startChain({
    keyFile: ws.keyFile,
    filesDir: ws.dir,
    env: { ODB_FETCH_TIMEOUT: '1s' },
  });
});

after(async () => {
  await peers.stopAll();
  ws.cleanup();
});

/** The FE's counters of lazy buffers written to plain sockets, once they reached its agent. */
async function plainWrites(
  settled: (w: NonNullable<Awaited<ReturnType<typeof storePing>>['plainWrites']>) => boolean,
) {
  let last: Awaited<ReturnType<typeof storePing>>['plainWrites'];
  await eventually(
    async () => {
      last = (await storePing(c.feStore)).plainWrites;
      return last !== undefined && settled(last);
    },
    5000,
    'the FE to report its plain writes',
  );
  return last!;
}

test('to a plain TCP client the kernel splices the bytes: exact, one store request per body, no page of the lazy buffers filled', async () => {
  const before = (await storePing(c.feStore)).plainWrites?.kernelBytes ?? 0;
  const faultsBefore = (await storePing(c.feStore)).faultBytes ?? 0;
  let total = 0;
  let bodies = 0;
  for (let round = 0; round < 2; round++) {
    for (const size of sizes) {
      const r = await get(c.url(`/f${size}.bin`));
      assert.ok(r.complete, `${size}: complete`);
      assert.equal(r.sha256, syntheticSha256(7, 0, size), `${size}: bytes`);
      total += size;
      bodies++;
    }
  }
  const writes = await plainWrites((w) => w.kernelBytes - before >= total);
  assert.equal(writes.kernelBytes - before, total, 'every body byte went by splice');
  assert.deepEqual(writes.fetched, {}, 'nothing was fetched into memory first');
  // The proxy writes each body in 64 KiB slices; they continue one store response per payload
  // (the BE sends one payload per body when nothing slows it down; a few more are allowed).
  assert.ok(writes.kernel >= total / (64 * 1024), `${writes.kernel} runs`);
  assert.ok(writes.kernelRequests <= bodies * 3, `${writes.kernelRequests} store requests`);
  assert.equal((await storePing(c.feStore)).faultBytes ?? 0, faultsBefore, 'no page fetched');
});

test('store connections reused for many bodies add no listener per reuse (no MaxListeners warning)', async () => {
  for (let i = 0; i < 24; i++) {
    const r = await get(c.url(`/f${sizes[0]}.bin`));
    assert.equal(r.sha256, syntheticSha256(7, 0, sizes[0]!));
  }
  assert.doesNotMatch(c.fe.stderr(), /MaxListenersExceededWarning/);
});

test('a client that stops reading for longer than the fetch timeout is not cut, and gets exact bytes', async () => {
  const size = 8 * 1024 * 1024;
  const r = await get(c.url(`/f${size}.bin`), { stallMs: 2500 });
  assert.ok(r.complete);
  assert.equal(r.sha256, syntheticSha256(7, 0, size));
});

test('a client gone mid-body: the FE keeps serving exact bytes', async () => {
  const size = 8 * 1024 * 1024;
  await new Promise<void>((resolve, reject) => {
    const req = request(c.url(`/f${size}.bin`), (res) => {
      let seen = 0;
      res.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= 256 * 1024) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on('error', () => {});
    req.on('close', resolve);
    req.on('error', reject);
    req.end();
  });
  for (const s of sizes) {
    const r = await get(c.url(`/f${s}.bin`));
    assert.equal(r.sha256, syntheticSha256(7, 0, s));
  }
  // (Who still holds the aborted body's payloads waits for a collection or the TTL: an
  // http-proxy FE keeps the last lazy buffer it was handed, with or without the kernel path.)
  assert.equal(c.fe.child.exitCode, null, 'the FE is alive');
});

test('a lazy buffer the application wrote into reaches the client as written; the untouched rest by splice', async () => {
  const feStore = `127.0.0.1:${await freePort()}`;
  const fe = await startNodeProgram('fe-stamp', streamFixture('fe-stamp.mjs'), {
    odb: true,
    env: odbEnv(ws.keyFile, {
      PORT: '0',
      UPSTREAM: `http://127.0.0.1:${c.is.port}`,
      ODB_CONNECT: `127.0.0.1:${c.is.port}`,
      ODB_STORE_LISTEN: feStore,
    }),
  });
  peers.add(fe);
  const size = 8 * 1024 * 1024;
  const expected = readFileSync(join(ws.dir, `f${size}.bin`));
  expected[0] = 0x58;
  const r = await get(`http://127.0.0.1:${fe.port}/f${size}.bin`);
  assert.ok(r.complete);
  assert.equal(r.sha256, createHash('sha256').update(expected).digest('hex'));
  // The write into the first slice filled its pages (a fault): that slice is written from
  // memory, as written; the slices after it go by splice.
  await eventually(
    async () => (await storePing(feStore)).plainWrites?.kernelBytes === size - 64 * 1024,
    5000,
    'the untouched slices to be spliced',
  );
  assert.ok(((await storePing(feStore)).faults ?? 0) >= 1, 'the write faulted the slice in');
});

test('an HTTPS client (curl, the test CA): the TLS socket gets the bytes fetched first, counted as tls', async () => {
  const pki = makeTestPki(ws.dir);
  const port = await freePort();
  const feStore = `127.0.0.1:${await freePort()}`;
  const fe = await startNodeProgram('fe-https', streamFixture('fe-https-proxy.mjs'), {
    odb: true,
    env: odbEnv(ws.keyFile, {
      PORT: String(port),
      UPSTREAM: `http://127.0.0.1:${c.is.port}`,
      TLS_KEY: pki.key,
      TLS_CERT: pki.cert,
      ODB_CONNECT: `127.0.0.1:${c.is.port}`,
      ODB_STORE_LISTEN: feStore,
    }),
  });
  peers.add(fe);
  const size = 1024 * 1024;
  const { stdout } = await run('bash', [
    '-o',
    'pipefail',
    '-c',
    `curl -sS --cacert '${pki.ca}' https://127.0.0.1:${port}/f${size}.bin | sha256sum`,
  ]);
  assert.equal(stdout.split(' ')[0], syntheticSha256(7, 0, size));
  await eventually(
    async () => ((await storePing(feStore)).plainWrites?.fetched.tls ?? 0) > 0,
    5000,
    'the TLS fallback to be counted',
  );
  await eventually(
    () => fe.stderr().includes('fetched first, not spliced') && fe.stderr().includes('"tls"'),
    5000,
    'the fallback to be logged, with its reason',
  );
});
