// The store's copy loop (src/store/pump.ts) into a real loopback socket: views of memory go out in
// pieces of `viewWriteBytes`, copies in 64 KiB pieces, and the peer gets exactly the bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { MemoryPayload } from '../../src/store/payloads/memory.js';
import type { PayloadSource } from '../../src/store/payloads/source.js';
import { maxViewWriteBytes, maxWriteBytes, pumpSource } from '../../src/store/pump.js';
import { eventually, scriptedServer, sha256 } from '../helpers/net.js';

/**
 * A loopback connection whose peer does `onPeer` (by default it collects everything until the
 * end, into `received`); `out` is this side.
 */
async function connection(
  onPeer?: (peer: Socket) => void,
): Promise<{ out: Socket; received: Promise<Buffer>; close(): Promise<void> }> {
  let resolveReceived!: (bytes: Buffer) => void;
  const received = new Promise<Buffer>((resolve) => (resolveReceived = resolve));
  const collect = (peer: Socket): void => {
    const chunks: Buffer[] = [];
    peer.on('data', (chunk: Buffer) => chunks.push(chunk));
    peer.on('end', () => resolveReceived(Buffer.concat(chunks)));
  };
  const { port, close } = await scriptedServer(onPeer ?? collect);
  const out = connect(port, '127.0.0.1');
  await once(out, 'connect');
  return { out, received, close };
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

/** A finished memory payload holding `bytes` (its reads are views). */
function memoryPayload(bytes: Buffer): MemoryPayload {
  const payload = new MemoryPayload({ expectedSize: bytes.length });
  payload.append(bytes);
  payload.finish();
  return payload;
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
  const payload = memoryPayload(body);
  assert.equal(payload.yieldsViews, true);
  const { out, received, close } = await connection();
  const sizes = writeSizes(out);
  const complete = await pumpSource(payload, 0, body.length, out, undefined, {
    viewWriteBytes: maxViewWriteBytes,
  });
  out.end();
  assert.equal(complete, true);
  assert.equal(sha256(await received), sha256(body));
  assert.ok(sizes.every((n) => n <= maxViewWriteBytes));
  assert.equal(sizes.length, Math.ceil(body.length / maxViewWriteBytes));
  await close();
});

test('without viewWriteBytes, and for copies, pieces stay at 64 KiB', async () => {
  for (const [source, options] of [
    [copyingSource(body), { viewWriteBytes: maxViewWriteBytes }],
    [memoryPayload(body), {}],
  ] as const) {
    const { out, received, close } = await connection();
    const sizes = writeSizes(out);
    const complete = await pumpSource(source, 1000, body.length, out, undefined, options);
    out.end();
    assert.equal(complete, true);
    assert.equal(sha256(await received), sha256(body.subarray(1000)));
    assert.ok(sizes.every((n) => n <= maxWriteBytes));
    assert.equal(sizes.length, Math.ceil((body.length - 1000) / maxWriteBytes));
    await close();
  }
});

test('a destroyed destination stops the copy: false, nothing more written', async () => {
  const { out, close } = await connection();
  const sizes = writeSizes(out);
  out.destroy();
  const complete = await pumpSource(memoryPayload(body), 0, body.length, out, undefined, {
    viewWriteBytes: maxViewWriteBytes,
  });
  assert.equal(complete, false);
  assert.deepEqual(sizes, []);
  await close();
});

test('a destination destroyed mid-copy stops it within one piece: false, no write after', async () => {
  // Larger than the loopback socket buffers take while the peer reads nothing.
  const big = Buffer.alloc(64 * 1024 * 1024, 7);
  const { out, close } = await connection((peer) => peer.pause());
  const sizes = writeSizes(out);
  const pumping = pumpSource(memoryPayload(big), 0, big.length, out, undefined, {
    viewWriteBytes: maxViewWriteBytes,
  });
  await eventually(() => sizes.length > 0, 5000, 'the first write');
  await new Promise((resolve) => setTimeout(resolve, 100)); // until its writes stall
  const before = sizes.length;
  out.destroy();
  assert.equal(await pumping, false);
  assert.equal(sizes.length, before, 'nothing written after the destroy');
  assert.ok(before < big.length / maxViewWriteBytes, `all ${before} pieces were written`);
  await close();
});
