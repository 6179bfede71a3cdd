// SIGTERM and SIGINT on programs under `--import odb/register` (docs/stream-mode.md, "Signals and
// shutdown"). A program without a handler of its own drains: it stops accepting, lets in-flight
// responses and its store's fetches finish, and exits 0; a second signal kills it at once. A
// program with a handler of its own behaves exactly as without ODB. Real processes, real sockets,
// bodies checked by SHA-256.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { freePort } from '../../dev/harness/free-port.js';
import { packageRoot, type NodeProgram } from '../../dev/harness/node-program.js';
import { streamFixture } from '../../dev/harness/stream-chain.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { workspace } from '../helpers/fixtures.js';
import { get } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { odbEnv, startPeer, storePing, type Peer } from '../helpers/stream.js';

const ws = workspace('odb-stream-shutdown-');
const big = 16 * 1024 * 1024;
const peers: Peer[] = [];

before(() => {
  ws.file(`f${big}.bin`, big, 5);
  ws.file('small.bin', 1000, 5);
});

after(async () => {
  await Promise.all(peers.map((p) => p.child.kill('SIGKILL') && p.exited));
  ws.cleanup();
});

async function peer(
  name: string,
  file: string,
  env: Record<string, string>,
  odb = true,
): Promise<Peer> {
  const p = await startPeer(name, file, odb ? odbEnv(ws.keyFile, env) : env, odb);
  peers.push(p);
  return p;
}

/** True once nothing accepts connections on `port` any more. */
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(true));
  });
}

/** The kernel function the main thread of `pid` sleeps in (`handle_userfault`: a page fault). */
function waitChannel(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/wchan`, 'utf8');
  } catch {
    return 'unknown';
  }
}

function running(p: NodeProgram): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** How a process ended. */
async function ending(p: NodeProgram): Promise<{ code: number | null; signal: string | null }> {
  await p.exited;
  return { code: p.child.exitCode, signal: p.child.signalCode };
}

/** A download that stops reading after its first bytes until `resume()`. */
function heldDownload(url: string): {
  started: Promise<void>;
  resume(): void;
  done: Promise<{ status: number; complete: boolean; bytes: number; sha256: string }>;
} {
  let resume = (): void => {};
  let started = (): void => {};
  const startedPromise = new Promise<void>((r) => (started = r));
  const done = new Promise<{ status: number; complete: boolean; bytes: number; sha256: string }>(
    (resolve, reject) => {
      const req = request(url, { agent: false });
      req.on('error', reject);
      req.on('response', (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        let first = true;
        let finished = false;
        const finish = (complete: boolean): void => {
          if (finished) return;
          finished = true;
          resolve({ status: res.statusCode!, complete, bytes, sha256: hash.digest('hex') });
        };
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          hash.update(chunk);
          if (first) {
            first = false;
            res.pause();
            resume = () => res.resume();
            started();
          }
        });
        res.on('end', () => finish(res.complete));
        res.on('error', () => finish(false));
        res.on('close', () => finish(res.complete && !res.errored));
      });
      req.end();
    },
  );
  return { started: startedPromise, resume: () => resume(), done };
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`no handler of its own: ${signal} to every tier mid-response — each stops accepting, the response completes byte-exact, each exits 0`, async () => {
    const [bePort, beStorePort, isPort] = [await freePort(), await freePort(), await freePort()];
    const be = await peer('be', 'be-files.mjs', {
      PORT: String(bePort),
      FILES_DIR: ws.dir,
      ODB_LISTEN: String(bePort),
      ODB_STORE_LISTEN: `127.0.0.1:${beStorePort}`,
      // The FE fetches the body from the BE's store only once the IS lets it go (HOLD_MS after
      // the BE answered); this machine may be slow, so the BE's store waits generously for it.
      ODB_DRAIN_QUIET: '3s',
    });
    const is = await peer('is', 'is-hold.mjs', {
      PORT: String(isPort),
      UPSTREAM_A: `http://127.0.0.1:${bePort}`,
      UPSTREAM_B: `http://127.0.0.1:${bePort}`,
      HOLD_MS: '600',
      ODB_LISTEN: String(isPort),
      ODB_CONNECT: `127.0.0.1:${bePort}`,
    });
    const fe = await peer('fe', 'is-proxy.mjs', {
      UPSTREAM: `http://127.0.0.1:${isPort}`,
      ODB_CONNECT: `127.0.0.1:${isPort}`,
    });
    const response = get(`http://127.0.0.1:${fe.port}/a/f${big}.bin`);
    // By now the BE has answered with a descriptor, the IS holds the body, the FE waits for it.
    await new Promise((r) => setTimeout(r, 200));
    for (const p of [be, is, fe]) p.child.kill(signal);
    for (const p of [be, is, fe])
      await eventually(() => refuses(p.port), 2000, `${p.name} to stop accepting`);
    const r = await response;
    const logs = (): string => [be, is, fe].map((p) => `${p.name}: ${p.stderr()}`).join('\n');
    assert.equal(r.status, 200);
    assert.ok(r.complete, `the response completed (${r.bytes} bytes)\n${logs()}`);
    assert.equal(r.sha256, syntheticSha256(5, 0, big));
    for (const p of [be, is, fe])
      assert.deepEqual(await ending(p), { code: 0, signal: null }, `${p.name}: ${p.stderr()}`);
  });
}

test('no handler of its own: a signal that arrives while the main thread waits for a lazy page takes effect once the page is there; the response completes byte-exact', async (t) => {
  const [bePort, isPort, isStorePort] = [await freePort(), await freePort(), await freePort()];
  const be = await peer('be', 'be-files.mjs', {
    PORT: String(bePort),
    FILES_DIR: ws.dir,
    ODB_LISTEN: String(bePort),
  });
  // is-hash reads every body byte in JavaScript: each first touch of a page blocks its main
  // thread until the agent has fetched it from the BE.
  const is = await peer('is', 'is-hash.mjs', {
    PORT: String(isPort),
    UPSTREAM: `http://127.0.0.1:${bePort}`,
    ODB_LISTEN: String(isPort),
    ODB_CONNECT: `127.0.0.1:${bePort}`,
    ODB_STORE_LISTEN: `127.0.0.1:${isStorePort}`,
  });
  const response = get(`http://127.0.0.1:${isPort}/f${big}.bin`);
  await eventually(
    async () => ((await storePing(`127.0.0.1:${isStorePort}`)).faults ?? 0) >= 2,
    10_000,
    'the IS to fault on the body',
  );
  be.child.kill('SIGSTOP'); // the owner stops answering: the IS's main thread waits for a page
  try {
    await new Promise((r) => setTimeout(r, 300));
    t.diagnostic(`IS main thread waits in: ${waitChannel(is.child.pid!)}`);
    is.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    t.diagnostic(
      `IS listener while its main thread waits: ${(await refuses(isPort)) ? 'closed' : 'still up'}`,
    );
  } finally {
    be.child.kill('SIGCONT');
  }
  const r = await response;
  assert.ok(r.complete);
  assert.equal(r.sha256, syntheticSha256(5, 0, big));
  assert.deepEqual(await ending(is), { code: 0, signal: null }, is.stderr());
});

test('no handler of its own: a second signal kills at once; the drain timeout cuts a stalled client and exits 0', async () => {
  const serve = async (extra: Record<string, string>): Promise<Peer> => {
    const port = await freePort();
    return peer('be', 'be-files.mjs', {
      PORT: String(port),
      FILES_DIR: ws.dir,
      ODB_LISTEN: String(port),
      ...extra,
    });
  };
  // A plain client that stops reading: the response cannot finish by itself.
  const first = await serve({});
  const stalled = heldDownload(`http://127.0.0.1:${first.port}/f${big}.bin`);
  await stalled.started;
  first.child.kill('SIGINT');
  await eventually(() => refuses(first.port), 2000, 'the BE to stop accepting');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(running(first), 'draining: still serving the stalled response');
  const t0 = Date.now();
  first.child.kill('SIGINT');
  assert.deepEqual(await ending(first), { code: null, signal: 'SIGINT' });
  assert.ok(Date.now() - t0 < 1000, `the second signal took ${Date.now() - t0} ms`);
  stalled.resume(); // (a paused socket does not read, so it would not see the close)
  assert.equal((await stalled.done).complete, false, 'the cut response is not a clean one');

  const second = await serve({ ODB_DRAIN_TIMEOUT: '1s' });
  const cut = heldDownload(`http://127.0.0.1:${second.port}/f${big}.bin`);
  await cut.started;
  const t1 = Date.now();
  second.child.kill('SIGTERM');
  assert.deepEqual(await ending(second), { code: 0, signal: null });
  const took = Date.now() - t1;
  assert.ok(took >= 900 && took < 5000, `exited ${took} ms after the signal`);
  assert.match(second.stderr(), /drain timeout/);
  cut.resume();
  const r = await cut.done;
  assert.ok(!r.complete && r.bytes < big, 'the stalled response was cut, not ended cleanly');
});

// The application's own handler decides; ODB neither drains nor keeps the process alive. Each
// case runs without and with ODB, and must end the same way.
for (const odb of [false, true]) {
  const mode = odb ? 'with ODB' : 'without ODB';

  test(`an application handler that closes its server (${mode}): it alone decides, and the process exits once its last connection has`, async () => {
    const port = await freePort();
    const p = await peer(
      'be-handler',
      'be-files-handler.mjs',
      { PORT: String(port), FILES_DIR: ws.dir, SIGNAL_HANDLER: 'close', ODB_LISTEN: String(port) },
      odb,
    );
    const download = heldDownload(`http://127.0.0.1:${port}/f${big}.bin`);
    await download.started;
    p.child.kill('SIGTERM');
    await eventually(() => /handler SIGTERM/.test(p.stderr()), 5000, 'the handler to run');
    await eventually(() => refuses(port), 2000, 'the application to close its server');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(running(p), 'the open response keeps the process, as without ODB');
    download.resume();
    const r = await download.done;
    assert.ok(r.complete);
    assert.equal(r.sha256, syntheticSha256(5, 0, big));
    const t0 = Date.now();
    assert.deepEqual(await ending(p), { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 3000, `exited ${Date.now() - t0} ms after its last response`);
  });

  test(`an application handler that only logs (${mode}): the process goes on serving`, async () => {
    const port = await freePort();
    const p = await peer(
      'be-handler',
      'be-files-handler.mjs',
      { PORT: String(port), FILES_DIR: ws.dir, SIGNAL_HANDLER: 'log', ODB_LISTEN: String(port) },
      odb,
    );
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      p.child.kill(signal);
      await eventually(() => p.stderr().includes(`handler ${signal}`), 5000, 'the handler');
    }
    await new Promise((r) => setTimeout(r, 500));
    const r = await get(`http://127.0.0.1:${port}/small.bin`);
    assert.equal(r.sha256, syntheticSha256(5, 0, 1000));
    assert.ok(running(p));
  });

  test(`a process.once handler (${mode}): a second signal has the default action`, async () => {
    const port = await freePort();
    const p = await peer(
      'be-handler',
      'be-files-handler.mjs',
      { PORT: String(port), FILES_DIR: ws.dir, SIGNAL_HANDLER: 'once', ODB_LISTEN: String(port) },
      odb,
    );
    const download = heldDownload(`http://127.0.0.1:${port}/f${big}.bin`);
    await download.started;
    p.child.kill('SIGINT');
    await eventually(() => /handler SIGINT/.test(p.stderr()), 5000, 'the handler to run');
    p.child.kill('SIGINT');
    assert.deepEqual(await ending(p), { code: null, signal: 'SIGINT' });
    download.resume();
    assert.equal((await download.done).complete, false);
  });

  test(`a program without a server (${mode}): SIGTERM kills it at once`, async () => {
    const child = spawn(
      process.execPath,
      [...(odb ? ['--import', 'odb/register'] : []), streamFixture('idle.mjs')],
      {
        cwd: packageRoot,
        env: { ...process.env, ...(odb ? odbEnv(ws.keyFile, {}) : {}) },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    const t0 = Date.now();
    child.kill('SIGTERM');
    await exited;
    assert.deepEqual(
      { code: child.exitCode, signal: child.signalCode },
      { code: null, signal: 'SIGTERM' },
    );
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
  });
}
