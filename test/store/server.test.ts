// The buffer store's server and the pooled fetch client, over real loopback sockets.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isOdbError, type OdbErrorCode } from '../../src/core/errors.js';
import {
  deriveDescriptor,
  descriptorToText,
  signDescriptor,
  type Descriptor,
} from '../../src/protocol/descriptor.js';
import { BufferFetcher } from '../../src/stream-mode/agent/fetcher.js';
import { StoreClient } from '../../src/store/client.js';
import { FilePayload } from '../../src/store/payloads/file.js';
import { MemoryPayload } from '../../src/store/payloads/memory.js';
import {
  SyntheticPayload,
  syntheticBytes,
  syntheticSha256,
} from '../../src/store/payloads/synthetic.js';
import { HashSink, eventually, rawExchange, scriptedServer, sha256 } from '../helpers/net.js';
import { neverReads, rawGet } from '../helpers/slow-readers.js';
import { startTestStore, testDescriptor } from '../helpers/store.js';

const { key, store, server, port, close } = await startTestStore({
  maxConcurrentFetches: 8,
});
const client = new StoreClient({ fetchTimeoutMs: 2000 });

after(async () => {
  await client.close();
  await close();
});

/** A valid descriptor of a `length`-byte payload at a store on local `port`. */
function descriptorAt(port: number, length: number): Descriptor {
  return testDescriptor(key, `127.0.0.1:${port}`, length);
}

function sink(): { target: { start: () => HashSink }; hash: HashSink } {
  const hash = new HashSink();
  return { target: { start: () => hash }, hash };
}

async function expectRefusal(descriptor: Descriptor, code: OdbErrorCode): Promise<void> {
  await assert.rejects(client.fetch(descriptor, sink().target), (e: unknown) =>
    isOdbError(e, code),
  );
}

test('fetches a payload byte-exact and releases it when asked', async () => {
  const d = store.register(new SyntheticPayload(3, 0, 3_000_000), 0)!;
  const { target, hash } = sink();
  assert.equal(await client.fetch(d, target, { releaseOnComplete: true }), 3_000_000);
  assert.equal(hash.digest(), syntheticSha256(3, 0, 3_000_000));
  assert.equal(store.has(d.payloadId.toString('hex')), false);
});

test('Range on a fetch is relative to the descriptor range', async () => {
  const d = store.register(new SyntheticPayload(4, 1000, 50_000), 0)!;
  const path = `/odb/v1/payload/${descriptorToText(d)}`;
  const { data } = await rawExchange(
    port,
    `GET ${path} HTTP/1.1\r\nHost: s\r\nRange: bytes=10-19\r\n\r\n`,
  );
  const text = data.toString('latin1');
  assert.match(text, /^HTTP\/1.1 206/);
  assert.match(text, /content-range: bytes 10-19\/50000/i);
  assert.deepEqual(data.subarray(data.indexOf('\r\n\r\n') + 4), syntheticBytes(4, 1010, 1020));
});

test('refusals carry stable codes', async () => {
  const live = store.register(new SyntheticPayload(1, 0, 10), 0)!;
  const fields = { ...live };
  await expectRefusal(
    signDescriptor(fields, { id: key.id, secret: Buffer.alloc(32, 1) }),
    'ODB_ERR_BAD_MAC',
  );
  await expectRefusal(
    signDescriptor(fields, { id: (key.id + 1) % 65536, secret: key.secret }),
    'ODB_ERR_UNKNOWN_KEY',
  );
  await expectRefusal(
    signDescriptor({ ...fields, expiresAt: Date.now() - 1 }, key),
    'ODB_ERR_EXPIRED',
  );
  await expectRefusal(
    signDescriptor({ ...fields, payloadId: Buffer.alloc(16, 9) }, key),
    'ODB_ERR_NOT_FOUND',
  );
  await expectRefusal(
    signDescriptor({ ...fields, length: 20, totalSize: 20 }, key),
    'ODB_ERR_OUT_OF_RANGE',
  );
  const { data } = await rawExchange(
    port,
    'GET /odb/v1/payload/not*base64 HTTP/1.1\r\nHost: s\r\n\r\n',
  );
  assert.match(data.toString(), /^HTTP\/1.1 400[\s\S]*odb-error: ODB_ERR_BAD_DESCRIPTOR/i);
});

test('pipelined requests on one connection are answered in order', async () => {
  const a = store.register(new SyntheticPayload(5, 0, 3000), 0)!;
  const b = store.register(new SyntheticPayload(6, 0, 4000), 0)!;
  const get = (d: Descriptor): string =>
    `GET /odb/v1/payload/${descriptorToText(d)} HTTP/1.1\r\nHost: s\r\n\r\n`;
  const { data } = await rawExchange(
    port,
    get(a) + get(b) + 'GET /odb/v1/ping HTTP/1.1\r\nHost: s\r\n\r\n',
  );
  const first = data.indexOf('\r\n\r\n') + 4;
  assert.deepEqual(data.subarray(first, first + 3000), syntheticBytes(5, 0, 3000));
  const secondHead = data.indexOf('HTTP/1.1 200', first + 3000);
  const second = data.indexOf('\r\n\r\n', secondHead) + 4;
  assert.deepEqual(data.subarray(second, second + 4000), syntheticBytes(6, 0, 4000));
  assert.match(data.subarray(second + 4000).toString(), /"ok":true/);
});

test('malformed input closes that connection only', async () => {
  const d = store.register(new SyntheticPayload(7, 0, 100_000), 0)!;
  const healthy = client.fetch(d, sink().target); // keeps its own pooled connection
  const garbage = await rawExchange(port, Buffer.from('\x16\x03\x01 this is not http\r\n\r\n'));
  assert.match(garbage.data.toString(), /^HTTP\/1.1 400/);
  assert.equal(garbage.closed, true);
  assert.equal(await healthy, 100_000);
  const again = store.register(new SyntheticPayload(7, 0, 10), 0)!;
  assert.equal(await client.fetch(again, sink().target), 10);
});

test('a file changed after registration is refused, never served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'odb-store-'));
  const path = join(dir, 'f.bin');
  writeFileSync(path, Buffer.alloc(10_000, 1));
  const d = store.register(await FilePayload.fromPath(path), 0)!;
  const { target, hash } = sink();
  await client.fetch(d, target);
  assert.equal(hash.digest(), sha256(Buffer.alloc(10_000, 1)));
  writeFileSync(path, Buffer.alloc(10_000, 2));
  utimesSync(path, new Date(), new Date(Date.now() + 5000));
  await expectRefusal(d, 'ODB_ERR_SOURCE_CHANGED');
});

test('an open payload streams while written, and frees what was consumed', async () => {
  const payload = new MemoryPayload({ highWaterBytes: 64 * 1024 });
  const d = store.register(payload, 64 * 1024)!;
  assert.equal(d.open, true);
  const { target, hash } = sink();
  const fetching = client.fetch(d, target, { releaseOnComplete: true });
  const chunks: Buffer[] = [];
  for (let i = 0; i < 64; i++) {
    const chunk = syntheticBytes(i, 0, 16 * 1024);
    chunks.push(chunk);
    if (payload.needsDrain) await new Promise<void>((r) => payload.onDrain(r));
    payload.append(chunk);
  }
  payload.finish();
  assert.equal(await fetching, 64 * 16 * 1024);
  assert.equal(hash.digest(), sha256(Buffer.concat(chunks)));
  await eventually(() => !store.has(d.payloadId.toString('hex')), 2000, 'release');
});

test('a producer failing mid-body makes the fetch fail, never end cleanly', async () => {
  const payload = new MemoryPayload({ expectedSize: 1_000_000 });
  const d = store.register(payload, 1_000_000)!;
  const { target, hash } = sink();
  const fetching = client.fetch(d, target);
  payload.append(Buffer.alloc(300_000));
  await eventually(() => hash.bytes > 0, 2000, 'first bytes');
  payload.fail('handler crashed');
  await assert.rejects(fetching, (e: unknown) => isOdbError(e, 'ODB_ERR_FETCH_ABORTED'));
  assert.ok(hash.bytes < 1_000_000);
  assert.equal(hash.destroyed, true);
});

test('busy: fetches beyond the concurrency limit are refused', async () => {
  const stalled = Array.from({ length: 8 }, () => new MemoryPayload({ expectedSize: 10 }));
  const fetches = stalled.map((p) => client.fetch(store.register(p, 10)!, sink().target));
  await eventually(() => server.stats.inFlight === 8, 2000, '8 fetches in flight');
  await expectRefusal(store.register(new SyntheticPayload(1, 0, 10), 0)!, 'ODB_ERR_BUSY');
  for (const p of stalled) {
    p.append(Buffer.alloc(10));
    p.finish();
  }
  await Promise.all(fetches);
});

test('a fetch that finds every store connection busy waits, bounded, as ODB_ERR_STORE_QUEUE_TIMEOUT', async () => {
  const narrow = new StoreClient({
    fetchTimeoutMs: 2000,
    connectionsPerStore: 1,
    queueTimeoutMs: 300,
  });
  const stalled = new MemoryPayload({ expectedSize: 10 });
  const holding = narrow.fetch(store.register(stalled, 10)!, sink().target); // the one connection
  let fed = false;
  try {
    await eventually(() => server.stats.inFlight === 1, 2000, 'the first fetch to stream');
    const started = Date.now();
    await assert.rejects(
      narrow.fetch(store.register(new SyntheticPayload(1, 0, 10), 0)!, sink().target),
      (e: unknown) => isOdbError(e, 'ODB_ERR_STORE_QUEUE_TIMEOUT'),
    );
    // Before, it waited inside the pool for the whole fetch timeout and was called unreachable.
    assert.ok(Date.now() - started < 1500, `failed after ${Date.now() - started} ms`);
    // One that gets the connection in time is served.
    const { target, hash } = sink();
    const queued = narrow.fetch(store.register(new SyntheticPayload(2, 0, 100_000), 0)!, target);
    stalled.append(Buffer.alloc(10));
    stalled.finish();
    fed = true;
    assert.equal(await holding, 10);
    assert.equal(await queued, 100_000);
    assert.equal(hash.digest(), syntheticSha256(2, 0, 100_000));
    assert.deepEqual(
      { queued: narrow.stats.queued, queueTimeouts: narrow.stats.queueTimeouts },
      { queued: 2, queueTimeouts: 1 },
    );
    assert.equal(narrow.stats.failures.ODB_ERR_STORE_QUEUE_TIMEOUT, 1);
  } finally {
    if (!fed) stalled.fail('the test ended');
    await holding.catch(() => {});
    await narrow.close();
  }
});

test('file bytes a fetch holds in memory count against the budget until its socket takes them', async () => {
  const budget = 1024 * 1024;
  // The JavaScript path reads file bytes into memory; sendfile holds none.
  const small = await startTestStore({ native: false }, { budgetBytes: budget });
  const dir = mkdtempSync(join(tmpdir(), 'odb-transit-'));
  const path = join(dir, 'f.bin');
  writeFileSync(path, Buffer.alloc(16 * 1024 * 1024, 3));
  const d = small.store.register(await FilePayload.fromPath(path), 0)!;
  const stalled = await Promise.all(
    Array.from({ length: 6 }, () =>
      rawGet('127.0.0.1', small.port, `/odb/v1/payload/${descriptorToText(d)}`, neverReads),
    ),
  );
  try {
    await eventually(() => small.store.stats.transitSqueezed > 0, 5000, 'the budget to be spent');
    const { transitBytes } = small.store.stats;
    assert.ok(transitBytes > budget / 2, `${transitBytes} bytes in transit`);
    assert.ok(transitBytes <= budget + 6 * 16 * 1024, `${transitBytes} bytes in transit`);
    // A payload that would need memory now goes real instead of growing the store past its budget.
    assert.equal(small.store.hasRoomFor(budget / 2), false);
  } finally {
    for (const r of stalled) r.destroy();
  }
  await eventually(
    () => small.store.stats.transitBytes === 0 && small.server.stats.inFlight === 0,
    5000,
    'the transit memory to be given back',
  );
  assert.equal(small.store.hasRoomFor(budget / 2), true);
  await small.close();
});

test('unreachable store: refused connection and silent peer both fail within the timeout', async () => {
  const silent = await scriptedServer(() => {}); // accepts, never answers
  const closed = await scriptedServer(() => {});
  await closed.close();
  const quick = new StoreClient({ fetchTimeoutMs: 300 });
  const started = Date.now();
  await assert.rejects(quick.fetch(descriptorAt(closed.port, 1), sink().target), (e: unknown) =>
    isOdbError(e, 'ODB_ERR_STORE_UNREACHABLE'),
  );
  await assert.rejects(quick.fetch(descriptorAt(silent.port, 1), sink().target), (e: unknown) =>
    isOdbError(e, 'ODB_ERR_FETCH_TIMEOUT'),
  );
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  await quick.close();
  await silent.close();
});

test('a store dying mid-body destroys the target short of the length', async () => {
  const dying = await scriptedServer((socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n');
      socket.write(Buffer.alloc(40_000, 5), () => socket.destroy());
    });
  });
  const d = descriptorAt(dying.port, 100_000);
  const { target, hash } = sink();
  await assert.rejects(client.fetch(d, target), (e: unknown) =>
    isOdbError(e, 'ODB_ERR_FETCH_ABORTED'),
  );
  assert.equal(hash.destroyed, true);
  assert.ok(hash.bytes < 100_000);
  await dying.close();
});

test('a store announcing the wrong length is refused before any byte is delivered', async () => {
  const liar = await scriptedServer((socket) => {
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello'));
  });
  const d = descriptorAt(liar.port, 6);
  let started = false;
  await assert.rejects(
    client.fetch(d, { start: () => ((started = true), new HashSink()) }),
    (e: unknown) => isOdbError(e, 'ODB_ERR_PROTOCOL'),
  );
  assert.equal(started, false);
  await liar.close();
});

test('the agent fetcher (node:http): exact bytes, and each failure under its stable code', async () => {
  const fetcher = new BufferFetcher({ fetchTimeoutMs: 400, connectionsPerStore: 2 });
  const silent = await scriptedServer(() => {}); // accepts, never answers
  const closed = await scriptedServer(() => {});
  await closed.close();
  const dying = await scriptedServer((socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n');
      socket.write(Buffer.alloc(40_000, 5), () => socket.destroy());
    });
  });
  const stalling = await scriptedServer((socket) => {
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
  });
  try {
    const d = store.register(new SyntheticPayload(9, 0, 300_000), 0)!;
    for (let i = 0; i < 3; i++) {
      // Several fetches on the kept-alive connections, ranges included.
      const range = deriveDescriptor(d, key, 1000 * i, 150_000, Date.now() + 60_000);
      assert.equal(
        sha256(await fetcher.fetchBuffer(range)),
        syntheticSha256(9, 1000 * i, 1000 * i + 150_000),
      );
    }
    const expectCode = (descriptor: Descriptor, code: OdbErrorCode): Promise<void> =>
      assert.rejects(fetcher.fetchBuffer(descriptor), (e: unknown) => isOdbError(e, code), code);
    await expectCode(descriptorAt(port, 10), 'ODB_ERR_NOT_FOUND');
    const forged = descriptorAt(port, 10);
    forged.bytes[forged.bytes.length - 1]! ^= 1;
    await expectCode(forged, 'ODB_ERR_BAD_MAC');
    await expectCode(descriptorAt(closed.port, 10), 'ODB_ERR_STORE_UNREACHABLE');
    await expectCode(descriptorAt(silent.port, 10), 'ODB_ERR_FETCH_TIMEOUT');
    await expectCode(descriptorAt(stalling.port, 10), 'ODB_ERR_FETCH_TIMEOUT');
    await expectCode(descriptorAt(dying.port, 100_000), 'ODB_ERR_FETCH_ABORTED');
    await expectCode(descriptorAt(dying.port, 99_999), 'ODB_ERR_PROTOCOL');
  } finally {
    fetcher.close();
    await Promise.all([silent.close(), dying.close(), stalling.close()]);
  }
});
