// Own-payload memory (native/own-memory.cc through src/stream-mode/memory/own-payload.ts): exact bytes, freed
// when the store drops the payload and never while a response still writes it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { test } from 'node:test';
import { bindingCandidates, loadLazyBinding } from '../../../src/native/binding.js';
import { descriptorToText, payloadIdHex } from '../../../src/protocol/descriptor.js';
import { obtainGc } from '../../../src/stream-mode/memory/collector.js';
import {
  OwnPayloadAllocator,
  freedByCollection,
  ownPayloadSource,
} from '../../../src/stream-mode/memory/own-payload.js';
import { eventually, sha256 } from '../../helpers/net.js';
import { startTestStore } from '../../helpers/store.js';

const loaded = loadLazyBinding();
const binding = 'binding' in loaded ? loaded.binding : undefined;
const skip = binding ? false : `the addon is not built: ${(loaded as { reason: string }).reason}`;
const gc = obtainGc()!;

/** Collects until the addon holds no freed mapping any more (views' finalizers have run). */
async function collectViews(): Promise<void> {
  await eventually(
    async () => {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
      return binding!.ownStats().retired === 0;
    },
    10_000,
    'freed payloads to be unmapped',
  );
}

async function readAll(iterable: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of iterable) parts.push(part);
  return Buffer.concat(parts);
}

test(
  'native payloads: exact bytes through the store source; freed on drop, not by collection',
  { skip },
  async () => {
    const before = binding!.ownStats();
    const bytes = randomBytes(1 << 20);
    const memory = new OwnPayloadAllocator(binding).allocate(bytes.length);
    memory.write(0, bytes.subarray(0, 1000));
    memory.write(1000, bytes.subarray(1000));
    const source = ownPayloadSource(memory.handOff(bytes.length), binding);
    assert.equal(freedByCollection(source), false);
    assert.equal(
      source.yieldsViews,
      true,
      'its reads are views: the store writes them in large pieces',
    );
    assert.equal(sha256(await readAll(source.read(0, undefined))), sha256(bytes));
    assert.equal(
      sha256(await readAll(source.read(4096, 70_000))),
      sha256(bytes.subarray(4096, 70_000)),
    );
    // The application thread's copy of a payload that came back to this process.
    assert.deepEqual(memory.bytes(10, 20), bytes.subarray(10, 30));
    assert.equal(binding!.ownStats().live, before.live + 1);
    assert.equal(binding!.ownStats().liveBytes, before.liveBytes + bytes.length);

    source.abandon!();
    source.abandon!(); // idempotent
    assert.equal(binding!.ownStats().live, before.live);
    assert.equal(binding!.ownStats().liveBytes, before.liveBytes);
    assert.equal(memory.bytes(0, 10), undefined, 'freed memory is not read');
    await assert.rejects(readAll(source.read(0, 10)), /dropped while being read/);
    await collectViews();
  },
);

test('memory that was never handed off is given back; bad ranges are refused', { skip }, () => {
  const before = binding!.ownStats();
  const memory = new OwnPayloadAllocator(binding).allocate(100);
  assert.throws(() => memory.write(90, Buffer.alloc(11)), /outside the payload/);
  memory.write(0, Buffer.alloc(100, 9));
  assert.deepEqual(memory.reclaim(50), Buffer.alloc(50, 9));
  const after = binding!.ownStats();
  assert.deepEqual(
    [after.live, after.liveBytes, after.retired],
    [before.live, before.liveBytes, before.retired],
  );
  assert.throws(() => memory.write(0, Buffer.alloc(1)), /freed/);
  const id = binding!.ownAllocate(10);
  assert.throws(() => binding!.ownView(id, 5, 6), /outside the payload/);
  assert.throws(() => binding!.ownCopy(id, -1, 2), /outside the payload/);
  binding!.ownFree(id);
  assert.equal(binding!.ownView(id, 0, 1), null);
});

test(
  'a freed payload whose views were released goes to the pool: the next payload of its size reuses the pages',
  { skip },
  async () => {
    binding!.ownTrim();
    const first = randomBytes(1 << 20);
    const memory = new OwnPayloadAllocator(binding).allocate(first.length);
    memory.write(0, first);
    const source = ownPayloadSource(memory.handOff(first.length), binding);
    const views: Buffer[] = [];
    for await (const view of source.read(0, undefined)) views.push(view);
    const piece = views[0]!.subarray(100, 200); // shares the view's memory
    assert.deepEqual(piece, first.subarray(100, 200));
    const before = binding!.ownStats();
    source.abandon!();
    // Released, not left to the collector: the views are empty, the mapping is pooled.
    assert.equal(views[0]!.length, 0);
    assert.equal(piece.length, 0);
    const freed = binding!.ownStats();
    assert.equal(freed.retired, before.retired, 'no mapping waits for a collection');
    assert.equal(freed.pooledBytes, 1 << 20);

    const second = randomBytes(1 << 20);
    const next = new OwnPayloadAllocator(binding).allocate(second.length);
    assert.equal(binding!.ownStats().poolHits, freed.poolHits + 1);
    assert.equal(binding!.ownStats().pooledBytes, 0);
    next.write(0, second);
    const nextSource = ownPayloadSource(next.handOff(second.length), binding);
    assert.equal(sha256(await readAll(nextSource.read(0, undefined))), sha256(second));
    nextSource.abandon!();
    binding!.ownTrim();
    assert.equal(binding!.ownStats().pooledBytes, 0);
    await collectViews();
  },
);

test(
  'a view read after its payload was freed stops the process instead of reading zeros',
  { skip },
  () => {
    const path = bindingCandidates().find((candidate) => existsSync(candidate));
    const script = `
    const b = require(${JSON.stringify(path)});
    const id = b.ownAllocate(8192);
    b.ownWrite(id, 0, Buffer.alloc(8192, 7));
    const view = b.ownView(id, 0, 8192);
    console.log('before', view[4096]);
    b.ownFree(id);
    console.log('after', view[4096]);`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(child.stdout, 'before 7\n');
    assert.equal(child.signal, 'SIGSEGV');
  },
);

test(
  'a payload dropped while its response is still being written is freed only after the write',
  { skip },
  async (t) => {
    const { store, server, port, close } = await startTestStore();
    t.after(close);
    const before = binding!.ownStats();
    // Larger than the socket buffers take while the client reads nothing (the sender's grows to
    // tcp_wmem's maximum, 4 MiB here): the store's writes stall with views of the payload's
    // memory in the socket's queue, which a free would turn into faults (a cut response).
    const wmemMax = Number(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').split(/\s+/)[2]);
    const bytes = randomBytes(2 * wmemMax + 12 * 1024);
    const memory = new OwnPayloadAllocator(binding).allocate(bytes.length);
    memory.write(0, bytes);
    const payload = store.register(ownPayloadSource(memory.handOff(bytes.length), binding), 0)!;
    const socket = connect(port, '127.0.0.1');
    socket.pause();
    socket.write(`GET /odb/v1/payload/${descriptorToText(payload)} HTTP/1.1\r\nhost: x\r\n\r\n`);
    await eventually(() => server.stats.fetchedBytes > 0, 10_000, 'the fetch to start');
    let handed = -1;
    while (handed !== server.stats.fetchedBytes) {
      handed = server.stats.fetchedBytes; // until the store's writes stall
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(handed < bytes.length, `the socket buffers took all ${handed} bytes`);
    assert.ok(store.release(payloadIdHex(payload)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(binding!.ownStats().live, before.live + 1, 'freed while still to be written');

    const early: Buffer[] = [];
    const received: Buffer[] = early;
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.resume();
    await eventually(() => Buffer.concat(received).length >= bytes.length, 20_000);
    const all = Buffer.concat(received);
    const body = all.indexOf('\r\n\r\n') + 4;
    await eventually(() => Buffer.concat(received).length - body >= bytes.length, 5000);
    assert.equal(sha256(Buffer.concat(received).subarray(body)), sha256(bytes));
    socket.destroy();
    await eventually(() => binding!.ownStats().live === before.live, 10_000, 'the free');
    await collectViews();
  },
);
