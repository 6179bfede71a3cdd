// Responses of ordinary handlers captured by `odb be` (`/chunked/<n>`) through a real chain
// FE → IS → BE: the descriptor head goes out while the handler is still writing, and the handler
// may write in any pattern (issue 13, items 4 and 15).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { odbChainForFile } from '../helpers/chain.js';
import { get } from '../helpers/http.js';

const files = odbChainForFile({
  // One IS→BE connection: the second request can only go where the first one's head went.
  isArgs: ['--connections', '1'],
});

/** A GET whose body is hashed only while the caller lets it flow (it starts paused). */
function slowReader(url: string): Promise<{
  res: IncomingMessage;
  read(): Promise<{ bytes: number; sha256: string; complete: boolean }>;
}> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      res.pause();
      const hash = createHash('sha256');
      let bytes = 0;
      const read = (): Promise<{ bytes: number; sha256: string; complete: boolean }> =>
        new Promise((done) => {
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            hash.update(chunk);
          });
          res.on('end', () => done({ bytes, sha256: hash.digest('hex'), complete: res.complete }));
          res.on('error', () => done({ bytes, sha256: '', complete: false }));
          res.resume();
        });
      resolve({ res, read });
    });
    req.end();
  });
}

/** Resolves with the response, or rejects once `ms` passed (the old code waited 30 s and more). */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resident memory of a process, in bytes. */
function residentBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}

async function descriptorResponses(): Promise<number> {
  return metricValue(
    await scrape(files.chain.be.addresses.metrics!),
    'odb_descriptor_responses_total',
  );
}

test('a body written one byte at a time goes as a descriptor with memory and time by its bytes', async () => {
  const size = 3_000_000;
  const baseline = residentBytes(files.chain.be.pid);
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, residentBytes(files.chain.be.pid))), 20);
  const described = await descriptorResponses();
  const started = Date.now();
  try {
    const r = await get(files.chain.url(`/chunked/${size}?chunk=1&seed=12`), { agent: false });
    const elapsed = Date.now() - started;
    assert.equal(r.status, 200);
    assert.ok(r.complete);
    assert.equal(r.bytes, size);
    assert.equal(r.sha256, syntheticSha256(12, 0, size));
    // About 2 s here; before, a one-byte write cost an object and each read an O(n) splice:
    // 502 after the 5 s fetch timeout, and the BE grew by over 200 MiB.
    assert.ok(elapsed < 20_000, `took ${elapsed} ms`);
  } finally {
    clearInterval(sampler);
  }
  assert.equal((await descriptorResponses()) - described, 1, 'it went as a descriptor');
  const grown = (peak - baseline) / 2 ** 20;
  assert.ok(grown < 64, `the BE grew by ${grown.toFixed(0)} MiB`);
});

test('handlers writing tiny pieces leave the back end responsive', async (t) => {
  // Four handlers writing 3 MB one byte at a time keep the BE busy for seconds; a small request
  // meanwhile must not wait for their bursts (each yields to the event loop every 1024 writes).
  const size = 3_000_000;
  const busy = Array.from({ length: 4 }, (_, i) =>
    get(files.chain.url(`/chunked/${size}?chunk=1&seed=${20 + i}`), { agent: false }),
  );
  let finished = false;
  void Promise.all(busy).then(() => (finished = true));
  const waits: number[] = [];
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < 10 && !finished; i++) {
    const started = Date.now();
    // Straight to the BE: its event loop is what the handlers could monopolise.
    const r = await within(
      5000,
      'probe',
      get(`http://${files.chain.be.addresses.http}/bytes/1000?seed=${i}`, { agent: false }),
    );
    waits.push(Date.now() - started);
    assert.equal(r.sha256, syntheticSha256(i, 0, 1000));
  }
  const results = await Promise.all(busy);
  results.forEach((r, i) => {
    assert.equal(r.status, 200);
    assert.equal(r.sha256, syntheticSha256(20 + i, 0, size));
  });
  assert.ok(waits.length >= 3, `only ${waits.length} probes while the handlers ran`);
  t.diagnostic(`probe waits ${waits.join(', ')} ms`);
  assert.ok(Math.max(...waits) < 1000, `probe waits ${waits.join(', ')} ms`);
});

test('the request after an open descriptor response is answered at once, not after its body', async () => {
  const size = 64 * 1024 * 1024;
  // The client takes the head and then reads nothing: the store pauses, the open payload's
  // window fills, and the handler that writes the chunked body is paused mid-body.
  const slow = await slowReader(files.chain.url(`/chunked/${size}?seed=7`));
  try {
    assert.equal(slow.res.statusCode, 200);
    assert.equal(slow.res.headers['transfer-encoding'], 'chunked');
    await nextRequestsAnsweredAtOnce();
  } catch (err) {
    slow.res.destroy();
    throw err;
  }
  const first = await slow.read();
  assert.ok(first.complete);
  assert.equal(first.bytes, size);
  assert.equal(first.sha256, syntheticSha256(7, 0, size));
});

async function nextRequestsAnsweredAtOnce(): Promise<void> {
  for (const path of ['/bytes/1000?seed=8', `/chunked/${2 * 1024 * 1024}?seed=9`]) {
    const started = Date.now();
    const next = await within(5000, path, get(files.chain.url(path), { agent: false }));
    const waited = Date.now() - started;
    assert.equal(next.status, 200, path);
    assert.ok(next.complete, path);
    const length = Number(/\/(\d+)\?/.exec(path)![1]);
    const seed = Number(/seed=(\d+)/.exec(path)![1]);
    assert.equal(next.sha256, syntheticSha256(seed, 0, length), path);
    assert.ok(waited < 1000, `${path} waited ${waited} ms behind the paused body`);
  }
}
