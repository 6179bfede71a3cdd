// The store's copy loop (src/store/pump.ts) into a real loopback socket: views of memory go out in
// pieces of `viewWriteBytes`, copies in 64 KiB pieces, and the peer gets exactly the bytes.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { MemoryPayload } from '../../src/store/payloads/memory.js';
import type { PayloadSource } from '../../src/store/payloads/source.js';
import { maxViewWriteBytes, maxWriteBytes, pumpSource } from '../../src/store/pump.js';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** A connected pair on loopback: what is written to `out` arrives at the returned promise. */
async function socketPair(): Promise<{ out: Socket; received: Promise<Buffer>; close(): void }> {
  const chunks: Buffer[] = [];
  let resolveReceived!: (bytes: Buffer) => void;
  const received = new Promise<Buffer>((resolve) => (resolveReceived = resolve));
  const server = createServer((peer) => {
    peer.on('data', (chunk: Buffer) => chunks.push(chunk));
    peer.on('end', () => resolveReceived(Buffer.concat(chunks)));
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const out = connect(port, '127.0.0.1');
  await once(out, 'connect');
  return { out, received, close: () => server.close() };
}

/** The sizes of the writes `socket` is asked to make. */
function writeSizes(socket: Socket): number[] {
  const sizes: number[] = [];
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((chunk: Buffer, ...rest: unknown[]) => {
    sizes.push(chunk.length);
    return write(chunk, ...rest);
  }) as Socket['write'];
  return sizes;
}

/** A source that copies its bytes for each read (as a file does), in one chunk. */
function copyingSource(bytes: Buffer): PayloadSource {
  return {
    size: bytes.length,
    async *read(start, end) {
      yield Buffer.from(bytes.subarray(start, end ?? bytes.length));
    },
  };
}

const body = randomBytes(3 * 1024 * 1024 + 12_345);

test('views go out in pieces of viewWriteBytes, byte-exact', async () => {
  const payload = new MemoryPayload({ expectedSize: body.length });
  payload.append(body);
  payload.finish();
  assert.equal(payload.yieldsViews, true);
  const { out, received, close } = await socketPair();
  const sizes = writeSizes(out);
  const complete = await pumpSource(payload, 0, body.length, out, undefined, {
    viewWriteBytes: maxViewWriteBytes,
  });
  out.end();
  assert.equal(complete, true);
  assert.equal(sha256(await received), sha256(body));
  assert.ok(sizes.every((n) => n <= maxViewWriteBytes));
  assert.equal(sizes.length, Math.ceil(body.length / maxViewWriteBytes));
  close();
});

test('without viewWriteBytes, and for copies, pieces stay at 64 KiB', async () => {
  for (const [source, options] of [
    [copyingSource(body), { viewWriteBytes: maxViewWriteBytes }],
    [
      (() => {
        const p = new MemoryPayload({ expectedSize: body.length });
        p.append(body);
        p.finish();
        return p;
      })(),
      {},
    ],
  ] as const) {
    const { out, received, close } = await socketPair();
    const sizes = writeSizes(out);
    const complete = await pumpSource(source, 1000, body.length, out, undefined, options);
    out.end();
    assert.equal(complete, true);
    assert.equal(sha256(await received), sha256(body.subarray(1000)));
    assert.ok(sizes.every((n) => n <= maxWriteBytes));
    assert.equal(sizes.length, Math.ceil((body.length - 1000) / maxWriteBytes));
    close();
  }
});

test('a destroyed destination stops the copy: false, nothing more written', async () => {
  const payload = new MemoryPayload({ expectedSize: body.length });
  payload.append(body);
  payload.finish();
  const { out, close } = await socketPair();
  const sizes = writeSizes(out);
  out.destroy();
  const complete = await pumpSource(payload, 0, body.length, out, undefined, {
    viewWriteBytes: maxViewWriteBytes,
  });
  assert.equal(complete, false);
  assert.deepEqual(sizes, []);
  close();
});

test('a destination destroyed mid-copy stops it within one piece: false, no write after', async () => {
  // Larger than the loopback socket buffers take while the peer reads nothing.
  const big = Buffer.alloc(64 * 1024 * 1024, 7);
  const payload = new MemoryPayload({ expectedSize: big.length });
  payload.append(big);
  payload.finish();
  const server = createServer((peer) => peer.pause()).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const out = connect((server.address() as { port: number }).port, '127.0.0.1');
  await once(out, 'connect');
  const sizes = writeSizes(out);
  const pumping = pumpSource(payload, 0, big.length, out, undefined, {
    viewWriteBytes: maxViewWriteBytes,
  });
  while (sizes.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 100)); // until its writes stall
  const before = sizes.length;
  out.destroy();
  assert.equal(await pumping, false);
  assert.equal(sizes.length, before, 'nothing written after the destroy');
  assert.ok(before < big.length / maxViewWriteBytes, `all ${before} pieces were written`);
  server.close();
});
