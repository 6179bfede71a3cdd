// OdbConnection (src/stream-mode/app/connection.ts), the per-socket state machine of stream mode,
// driven in this process: a Duplex stands in for the net.Socket (the peer's bytes are pushed into
// it as libuv would, the application reads and writes it as usual, and what would reach the
// kernel is recorded), and a minimal runtime holds only what the connection asks of one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { isOdbError } from '../../../src/core/errors.js';
import { generateClusterKey, Keyring } from '../../../src/core/keys/keyring.js';
import { silentLogger } from '../../../src/core/log.js';
import { signDescriptor, type Descriptor } from '../../../src/protocol/descriptor.js';
import {
  FrameDecoder,
  encodeFrameHeader,
  encodeRealFrames,
  encodeVirtualFrame,
  FrameType,
  frameReal,
} from '../../../src/protocol/frame.js';
import { helloFlags, helloFrame } from '../../../src/protocol/hello.js';
import { chunksOf, OdbConnection } from '../../../src/stream-mode/app/connection.js';
import type { StreamRuntime } from '../../../src/stream-mode/app/runtime.js';
import { syntheticBytes } from '../../../src/store/payloads/synthetic.js';
import { sha256 } from '../../helpers/net.js';

const key = generateClusterKey();
const keyring = new Keyring([key]);
const threshold = 64 * 1024;

/** A socket stand-in, its connection, and what crossed it. */
interface Wired {
  readonly socket: Socket;
  connection: OdbConnection;
  /** Bytes the connection handed to the kernel (its `_writeGeneric`), in order. */
  wire(): Buffer;
  /** Each 'data' chunk the application got. */
  readonly reads: Buffer[];
  read(): Buffer;
  readonly errors: Error[];
  /** Descriptors the runtime was asked to receive. */
  readonly received: Descriptor[];
  introduced: number;
}

/**
 * What the connection uses of a StreamRuntime, and no more: its settings (no gathering), log,
 * keys and counters; no lazy buffers (nothing written is one); own payloads refused (large
 * writes go real); a received descriptor is resolved to its synthetic bytes.
 */
function minimalRuntime(received: Descriptor[]): StreamRuntime {
  return {
    config: { thresholdBytes: threshold, gather: { maxBytes: 0, waitMs: 0 } },
    log: silentLogger,
    keyring,
    stats: {
      sentVirtual: 0,
      sentVirtualBytes: 0,
      forwarded: 0,
      forwardedBytes: 0,
      sentReal: 0,
      sentRealBytes: 0,
      receivedVirtual: 0,
      receivedVirtualBytes: 0,
      materialized: 0,
      fetchFailures: 0,
    },
    lazyView: () => undefined,
    isMaterialized: () => true,
    registerOwn: () => undefined,
    receive: (descriptor: Descriptor) => {
      received.push(descriptor);
      return syntheticBytes(5, descriptor.offset, descriptor.offset + descriptor.length);
    },
  } as unknown as StreamRuntime;
}

/**
 * A Duplex wired as net.Socket is under the interposition: the application's writes end in the
 * connection's `write` (interpose.ts does that from `_writeGeneric`), whose own output goes to
 * the recorded "kernel".
 */
function wire(
  start: (socket: Socket, runtime: StreamRuntime, writeGeneric: never) => OdbConnection,
): Wired {
  const out: Buffer[] = [];
  const reads: Buffer[] = [];
  const errors: Error[] = [];
  const received: Descriptor[] = [];
  const started: { connection?: OdbConnection } = {};
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, encoding, cb) {
      started.connection!.write(false, chunk, encoding, cb);
    },
    final(cb) {
      cb();
    },
  });
  const socket = duplex as unknown as Socket;
  const writeGeneric = function (
    this: Socket,
    writev: boolean,
    data: unknown,
    encoding: string,
    cb: (err?: Error | null) => void,
  ): void {
    assert.equal(this, socket);
    out.push(...chunksOf(writev, data, encoding).map((c) => Buffer.from(c)));
    setImmediate(() => cb());
  };
  const wired: Wired = {
    socket,
    connection: undefined as unknown as OdbConnection,
    wire: () => Buffer.concat(out),
    reads,
    read: () => Buffer.concat(reads),
    errors,
    received,
    introduced: 0,
  };
  started.connection = start(socket, minimalRuntime(received), writeGeneric as never);
  wired.connection = started.connection;
  duplex.on('data', (chunk: Buffer) => reads.push(chunk));
  duplex.on('error', (err) => errors.push(err));
  return wired;
}

const accepted = (): Wired => {
  const w: Wired = wire((socket, runtime, writeGeneric) =>
    OdbConnection.accept(socket, runtime, writeGeneric, () => w.introduced++),
  );
  return w;
};

/** The peer's bytes, as reads of the socket. */
function peerSends(w: Wired, ...reads: Buffer[]): void {
  for (const read of reads) w.socket.push(read);
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Writes through the socket as the application would; resolves at the write's callback. */
function appWrites(w: Wired, bytes: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) =>
    w.socket.write(bytes, (err) => (err ? reject(err) : resolve())),
  );
}

/** The R bytes (and other frames, by type) in `bytes`, which must be whole frames. */
function unframe(bytes: Buffer): { real: Buffer; types: string[] } {
  const decoder = new FrameDecoder();
  const real: Buffer[] = [];
  const types: string[] = [];
  decoder.push(bytes, (event) => {
    if (event.type === 'real') real.push(Buffer.from(event.bytes));
    if (event.type !== 'real' || event.last) types.push(event.type);
  });
  assert.ok(decoder.atBoundary, 'the wire ends at a frame boundary');
  return { real: Buffer.concat(real), types };
}

/** An accepted connection that got a hello and answered it. */
async function odbAccepted(): Promise<Wired> {
  const w = accepted();
  peerSends(w, helloFrame());
  await turn();
  assert.equal(w.connection.mode, 'odb');
  return w;
}

/** Cuts `bytes` into reads at deterministic pseudo-random points. */
function split(bytes: Buffer, seed: number, maxRead = 70_000): Buffer[] {
  const reads: Buffer[] = [];
  let state = seed;
  for (let at = 0; at < bytes.length;) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const n = 1 + (state % maxRead);
    reads.push(bytes.subarray(at, at + n));
    at += n;
  }
  return reads;
}

test('accepting: a hello (in two reads) is answered, and then both directions are framed', async () => {
  const w = accepted();
  const hello = helloFrame();
  peerSends(w, hello.subarray(0, 5));
  await turn();
  assert.equal(w.connection.mode, 'sniffing');
  assert.equal(w.wire().length, 0);
  peerSends(w, hello.subarray(5));
  await turn();
  assert.equal(w.connection.mode, 'odb');
  // Answered, flagged as an answer, before anything else; the application has the socket now.
  assert.deepEqual(w.wire(), helloFrame(helloFlags.answer));
  assert.equal(w.introduced, 1);
  assert.equal(w.read().length, 0, 'the hello is not the application’s');
  const answerLength = w.wire().length;
  const reply = randomBytes(100_000); // above the 16 KiB copy limit: headers and views
  await appWrites(w, 'pong');
  await appWrites(w, reply);
  const framed = unframe(w.wire().subarray(answerLength));
  assert.equal(sha256(framed.real), sha256(Buffer.concat([Buffer.from('pong'), reply])));
  assert.ok(framed.types.every((t) => t === 'real'));
  w.socket.destroy();
});

test('connecting: the hello goes before the first write, which waits for the answer', async () => {
  let refused = 0;
  const w = wire((socket, runtime, writeGeneric) =>
    OdbConnection.connect(socket, runtime, writeGeneric, () => refused++),
  );
  assert.equal(w.connection.mode, 'unsaid');
  let written = false;
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const write = appWrites(w, request).then(() => (written = true));
  await turn();
  assert.equal(w.connection.mode, 'awaiting-hello');
  assert.deepEqual(w.wire(), helloFrame());
  assert.equal(written, false, 'the write waits for the answer');
  peerSends(w, helloFrame(helloFlags.answer));
  await write;
  assert.equal(w.connection.mode, 'odb');
  const framed = unframe(w.wire().subarray(helloFrame().length));
  assert.deepEqual(framed.real, request);
  assert.equal(refused, 0);
  w.socket.destroy();
});

test('a plain peer stays plain, byte for byte, both ways', async () => {
  const w = accepted();
  const head = Buffer.from('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n');
  const upload = Buffer.concat([head, randomBytes(300_000)]);
  peerSends(w, ...split(upload, 7));
  await turn();
  assert.equal(w.connection.mode, 'plain');
  assert.equal(w.introduced, 1);
  assert.equal(sha256(w.read()), sha256(upload));
  const answer = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), randomBytes(1 << 20)]);
  await appWrites(w, answer);
  await appWrites(w, 'tail');
  // Nothing added, nothing framed: what the application wrote is what the kernel got.
  assert.equal(sha256(w.wire()), sha256(Buffer.concat([answer, Buffer.from('tail')])));
  assert.equal(w.errors.length, 0);
  w.socket.destroy();
});

test('a plain peer whose first byte could open a hello gets its bytes once it is clearly not one', async () => {
  const w = accepted();
  peerSends(w, Buffer.from('\r'));
  await turn();
  assert.equal(w.connection.mode, 'sniffing');
  assert.equal(w.read().length, 0, 'held while it may be a hello');
  // A peer that waits for a banner: at the hello deadline (50 ms) its byte is the application's.
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(w.connection.mode, 'plain');
  assert.deepEqual(w.read(), Buffer.from('\r'));
  assert.equal(w.introduced, 1);
  peerSends(w, Buffer.from('\nmore'));
  await turn();
  assert.deepEqual(w.read(), Buffer.from('\r\nmore'));
  w.socket.destroy();
});

test('R frames from the peer come out as the application’s bytes, whatever the reads', async () => {
  const w = await odbAccepted();
  const parts = [randomBytes(10), randomBytes(20_000), randomBytes(1 << 20), randomBytes(3)];
  const stream = Buffer.concat(parts.flatMap((p) => frameReal(p)));
  peerSends(w, ...split(stream, 3));
  await turn();
  assert.equal(sha256(w.read()), sha256(Buffer.concat(parts)));
  // R bytes that arrive in one read are one chunk, as a plain socket's read would be.
  const before = w.reads.length;
  peerSends(w, Buffer.concat([...frameReal(Buffer.from('a')), ...frameReal(Buffer.from('bc'))]));
  await turn();
  assert.deepEqual(w.reads.slice(before), [Buffer.from('abc')]);
  assert.equal(w.errors.length, 0);
  w.socket.destroy();
});

test('a V frame is verified and handed on as the payload’s bytes, in reads of at most 64 KiB', async () => {
  const w = await odbAccepted();
  const length = 200_000;
  const descriptor = signDescriptor(
    {
      endpoint: '127.0.0.1:9',
      payloadId: randomBytes(16),
      offset: 0,
      length,
      totalSize: length,
      expiresAt: Date.now() + 60_000,
      open: false,
    },
    key,
  );
  peerSends(
    w,
    Buffer.concat([...frameReal(Buffer.from('head')), ...encodeVirtualFrame(descriptor.bytes)]),
  );
  await turn();
  assert.equal(w.received.length, 1);
  assert.deepEqual(w.received[0]!.bytes, descriptor.bytes);
  assert.equal(
    sha256(w.read()),
    sha256(Buffer.concat([Buffer.from('head'), syntheticBytes(5, 0, length)])),
  );
  assert.ok(w.reads.every((r) => r.length <= 64 * 1024));
  w.socket.destroy();
});

/** Asserts the connection was closed with an OdbError of `code`. */
async function expectClosed(w: Wired, code: string): Promise<void> {
  await turn();
  assert.equal(w.socket.destroyed, true);
  assert.equal(w.errors.length, 1, String(w.errors));
  assert.ok(isOdbError(w.errors[0]), String(w.errors[0]));
  assert.equal(w.errors[0].code, code);
}

test('a frame header with a bad CRC closes the connection (ODB_ERR_BAD_CRC), after what came before', async () => {
  const w = await odbAccepted();
  const bad = encodeFrameHeader(FrameType.real, 10);
  bad[8]! ^= 0xff;
  peerSends(w, Buffer.concat([...frameReal(Buffer.from('before')), bad, Buffer.alloc(10)]));
  await expectClosed(w, 'ODB_ERR_BAD_CRC');
  assert.deepEqual(w.read(), Buffer.from('before'));
});

test('other malformed input ends the connection with the code the module uses', async (t) => {
  await t.test('a hello in the middle of a connection → ODB_ERR_PROTOCOL', async () => {
    const w = await odbAccepted();
    peerSends(w, helloFrame());
    await expectClosed(w, 'ODB_ERR_PROTOCOL');
  });
  await t.test('the stream ends inside a frame → ODB_ERR_BAD_FRAME', async () => {
    const w = await odbAccepted();
    peerSends(w, encodeRealFrames(Buffer.from('cut short'))[0]!, Buffer.from('cut'));
    w.socket.push(null);
    await expectClosed(w, 'ODB_ERR_BAD_FRAME');
    assert.deepEqual(w.read(), Buffer.from('cut'));
  });
  await t.test(
    'a V frame whose MAC does not verify → ODB_ERR_BAD_MAC, nothing fetched',
    async () => {
      const w = await odbAccepted();
      const descriptor = signDescriptor(
        {
          endpoint: '127.0.0.1:9',
          payloadId: randomBytes(16),
          offset: 0,
          length: 100_000,
          totalSize: 100_000,
          expiresAt: Date.now() + 60_000,
          open: false,
        },
        { id: key.id, secret: randomBytes(32) },
      );
      peerSends(w, Buffer.concat(encodeVirtualFrame(descriptor.bytes)));
      await expectClosed(w, 'ODB_ERR_BAD_MAC');
      assert.equal(w.received.length, 0);
    },
  );
  await t.test(
    'a connector answered with its own hello echoed → ODB_ERR_PROTOCOL, refused',
    async () => {
      let refused = 0;
      const w = wire((socket, runtime, writeGeneric) =>
        OdbConnection.connect(socket, runtime, writeGeneric, () => refused++),
      );
      const write = appWrites(w, 'hi').catch((err: Error) => err);
      await turn();
      peerSends(w, helloFrame()); // an echo server sends our hello back: not flagged as an answer
      await expectClosed(w, 'ODB_ERR_PROTOCOL');
      assert.equal(refused, 1);
      const failed = await write;
      assert.ok(failed instanceof Error, 'the held write fails');
    },
  );
});
