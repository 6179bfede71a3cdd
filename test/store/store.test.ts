import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isOdbError } from '../../src/core/errors.js';
import { generateClusterKey, Keyring } from '../../src/core/keys/keyring.js';
import { payloadIdHex } from '../../src/protocol/descriptor.js';
import { MemoryPayload } from '../../src/store/payloads/memory.js';
import { BufferStore, minTransitChunkBytes } from '../../src/store/store.js';
import { SyntheticPayload, syntheticBytes } from '../../src/store/payloads/synthetic.js';

const keyring = new Keyring([generateClusterKey()]);

async function readAll(
  source: { read(s: number, e: number | undefined): AsyncIterable<Buffer> },
  start = 0,
  end?: number,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of source.read(start, end)) parts.push(chunk);
  return Buffer.concat(parts);
}

test('memory payload: readers stream bytes as the producer appends them', async () => {
  const payload = new MemoryPayload({ expectedSize: 10 });
  const reading = readAll(payload, 2, 9);
  payload.append(Buffer.from('0123'));
  await new Promise((r) => setImmediate(r));
  payload.append(Buffer.from('456789'));
  payload.finish();
  assert.equal((await reading).toString(), '2345678');
  assert.equal((await readAll(payload)).toString(), '0123456789');
});

test('memory payload: a short or long producer fails its readers instead of delivering', async () => {
  const short = new MemoryPayload({ expectedSize: 10 });
  const reading = readAll(short);
  short.append(Buffer.from('abc'));
  short.finish();
  await assert.rejects(reading, (e: unknown) => isOdbError(e, 'ODB_ERR_PAYLOAD_FAILED'));
  const long = new MemoryPayload({ expectedSize: 2 });
  long.append(Buffer.from('abc'));
  await assert.rejects(readAll(long), (e: unknown) => isOdbError(e, 'ODB_ERR_PAYLOAD_FAILED'));
});

test('memory payload: an open payload is a bounded pipe', async () => {
  const payload = new MemoryPayload({ highWaterBytes: 8 });
  payload.append(Buffer.alloc(6, 1));
  assert.equal(payload.needsDrain, false);
  payload.append(Buffer.alloc(6, 2));
  assert.equal(payload.needsDrain, true);
  let drained = false;
  payload.onDrain(() => (drained = true));
  payload.discardBefore(6);
  assert.equal(drained, true);
  assert.equal(payload.size, undefined);
  payload.finish();
  assert.equal(payload.size, 12);
  assert.deepEqual(await readAll(payload, 6), Buffer.alloc(6, 2));
  await assert.rejects(readAll(payload, 0), (e: unknown) => isOdbError(e, 'ODB_ERR_OUT_OF_RANGE'));
});

test('memory payload: abandoning stops the producer and fails waiting readers', async () => {
  const payload = new MemoryPayload({ highWaterBytes: 1 });
  payload.append(Buffer.alloc(4));
  const reading = readAll(payload, 4);
  let drained = false;
  payload.onDrain(() => (drained = true));
  payload.abandon();
  assert.equal(drained, true);
  await assert.rejects(reading, (e: unknown) => isOdbError(e, 'ODB_ERR_EXPIRED'));
  payload.append(Buffer.alloc(4)); // dropped silently: nobody can read it
  assert.equal(payload.written, 4);
});

test('store: budget refuses new payloads and never evicts live ones', () => {
  const store = new BufferStore({ keyring, budgetBytes: 100 });
  store.advertise('127.0.0.1:1');
  const a = store.register(new MemoryPayload({ expectedSize: 60 }), 60);
  assert.ok(a);
  assert.equal(store.register(new MemoryPayload({ expectedSize: 60 }), 60), undefined);
  assert.equal(store.stats.rejectedFull, 1);
  assert.ok(store.has(payloadIdHex(a)));
  // Payloads that hold no memory (files, synthetic) are still bounded by the entry limit.
  assert.ok(store.register(new SyntheticPayload(1, 0, 1e9), 0));
  store.release(payloadIdHex(a));
  assert.equal(store.stats.chargedBytes, 0);
  assert.ok(store.register(new MemoryPayload({ expectedSize: 60 }), 60));
  store.close();
});

test('store: entries expire after the TTL unless a fetch is streaming them', () => {
  let now = 1_000;
  const store = new BufferStore({ keyring, ttlMs: 100, now: () => now });
  store.advertise('127.0.0.1:1');
  const idle = payloadIdHex(store.register(new SyntheticPayload(1, 0, 10), 0)!);
  const busy = payloadIdHex(store.register(new SyntheticPayload(1, 0, 10), 0)!);
  const reader = store.beginRead(busy);
  now += 101;
  store.sweep();
  assert.equal(store.has(idle), false);
  assert.equal(store.has(busy), true);
  assert.equal(store.stats.expired, 1);
  store.endRead(reader);
  assert.throws(
    () => store.beginRead(busy),
    (e: unknown) => isOdbError(e, 'ODB_ERR_EXPIRED'),
  );
  assert.throws(
    () => store.beginRead(idle),
    (e: unknown) => isOdbError(e, 'ODB_ERR_NOT_FOUND'),
  );
  assert.equal(store.stats.entries, 0);
  store.close();
});

test('store: a released payload finishes its streaming fetch, then is abandoned', async () => {
  const store = new BufferStore({ keyring });
  store.advertise('127.0.0.1:1');
  const payload = new MemoryPayload({ expectedSize: 4 });
  const id = payloadIdHex(store.register(payload, 4)!);
  const entry = store.beginRead(id);
  store.release(id);
  payload.append(Buffer.from('data'));
  payload.finish();
  assert.equal((await readAll(entry.source)).toString(), 'data');
  store.endRead(entry);
  assert.equal(payload.abandoned, true);
  store.close();
});

test('store: memory in transit counts against the budget; reads shrink instead of waiting', () => {
  const store = new BufferStore({ keyring, budgetBytes: 1024 * 1024 });
  store.advertise('127.0.0.1:1');
  assert.ok(store.register(new MemoryPayload({ expectedSize: 10 }), 512 * 1024));
  assert.equal(store.reserveTransit(256 * 1024), 256 * 1024);
  assert.equal(store.hasRoomFor(512 * 1024), false); // 256 KiB of room left
  assert.equal(store.reserveTransit(256 * 1024), 256 * 1024);
  // Spent: a read gets the smallest chunk, and that is counted.
  assert.equal(store.reserveTransit(256 * 1024), minTransitChunkBytes);
  assert.equal(store.reserveTransit(4096), 4096); // asked for less than the smallest chunk
  assert.deepEqual(
    { transit: store.stats.transitBytes, squeezed: store.stats.transitSqueezed },
    { transit: 512 * 1024 + minTransitChunkBytes + 4096, squeezed: 1 },
  );
  assert.equal(store.hasRoomFor(1), false);
  // A payload that holds no memory still fits.
  assert.ok(store.register(new SyntheticPayload(1, 0, 10), 0));
  store.releaseTransit(store.stats.transitBytes);
  assert.equal(store.hasRoomFor(512 * 1024), true);
  store.close();
});

test('synthetic payload: any range equals the same range of the whole', async () => {
  const whole = syntheticBytes(5, 0, 600_000);
  const source = new SyntheticPayload(5, 1234, 500_000);
  assert.deepEqual(await readAll(source, 10, 400_000), whole.subarray(1244, 401_234));
  assert.notDeepEqual(syntheticBytes(5, 0, 4096), syntheticBytes(5, 4096, 8192));
  assert.notDeepEqual(syntheticBytes(5, 0, 100), syntheticBytes(6, 0, 100));
});
