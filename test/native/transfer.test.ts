// The transfer engine (native/transfer.cc through src/native/transfer.ts) on real files and
// loopback sockets: exact bytes by sendfile and by splice at sizes from 0 B to 200 MiB, a splice
// that leaves the bytes after its length in the source socket, and each way a transfer can end
// early (destination gone, source gone, file changed, idle, cancelled), told apart by its side.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { openSync, closeSync, writeFileSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { transferEngine, type TransferEngine } from '../../src/native/transfer.js';
import { workspace } from '../helpers/fixtures.js';
import { sha256 } from '../helpers/net.js';

const loaded = transferEngine(true);
const engine: TransferEngine | undefined = 'engine' in loaded ? loaded.engine : undefined;
const skip = engine ? false : `no transfer engine: ${'reason' in loaded ? loaded.reason : ''}`;
const ws = workspace('odb-transfer-');
after(() => ws.cleanup());

/** A connected pair of loopback sockets: `client` (connected) and `server` (accepted, not read). */
async function socketPair(): Promise<{ client: Socket; server: Socket; close(): void }> {
  const listener: Server = createServer({ pauseOnConnect: true });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as { port: number };
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [server] = await accepted;
  listener.close();
  // The tests reset connections on purpose: a reset is what they look at, not an error.
  const ignore = (): void => {};
  client.on('error', ignore);
  server.on('error', ignore);
  return {
    client,
    server,
    close: () => {
      client.destroy();
      server.destroy();
    },
  };
}

/** Reads `length` bytes from `socket` and resolves with their SHA-256 (and any bytes after). */
function hashOf(socket: Socket, length: number): Promise<{ hash: string; extra: Buffer }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let got = 0;
    const extra: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      const take = Math.min(chunk.length, length - got);
      h.update(chunk.subarray(0, take));
      got += take;
      if (take < chunk.length) extra.push(chunk.subarray(take));
      if (got === length) resolve({ hash: h.digest('hex'), extra: Buffer.concat(extra) });
    });
    socket.on('error', reject);
    socket.resume();
    if (length === 0) resolve({ hash: sha256(Buffer.alloc(0)), extra: Buffer.alloc(0) });
  });
}

const fd = (socket: Socket): number =>
  (socket as unknown as { _handle: { fd: number } })._handle.fd;

for (const size of [0, 1, 4096, 1024 * 1024 + 3, 200 * 1024 * 1024]) {
  test(`sendfile and splice carry ${size} bytes exactly`, { skip }, async () => {
    const data = randomBytes(size + 11);
    const path = join(ws.dir, `f${size}`);
    writeFileSync(path, data);
    const want = sha256(data.subarray(11));
    // File → A (sendfile, from offset 11) → B (splice) → reader.
    const first = await socketPair();
    const second = await socketPair();
    const file = openSync(path, 'r');
    try {
      const received = hashOf(second.server, size);
      const sent = engine!.sendfile(file, fd(first.client), 11, size, 10_000);
      const spliced = engine!.splice(fd(first.server), fd(second.client), size, 10_000);
      const [s, p, r] = await Promise.all([sent.ended, spliced.ended, received]);
      assert.deepEqual([s.reason, s.written], ['OK', size]);
      assert.deepEqual([p.reason, p.written], ['OK', size]);
      assert.equal(r.hash, want);
    } finally {
      closeSync(file);
      first.close();
      second.close();
    }
  });
}

test(
  'a splice takes exactly its length: what follows stays in the source for JavaScript',
  { skip },
  async () => {
    const a = await socketPair();
    const b = await socketPair();
    try {
      const body = randomBytes(300_000);
      const next = Buffer.from('NEXT RESPONSE');
      a.client.write(Buffer.concat([body, next]));
      const received = hashOf(b.server, body.length);
      const spliced = engine!.splice(fd(a.server), fd(b.client), body.length, 5000);
      assert.equal((await spliced.ended).reason, 'OK');
      assert.equal((await received).hash, sha256(body));
      a.server.resume();
      const [after] = (await once(a.server, 'data')) as [Buffer];
      assert.equal(after.toString(), 'NEXT RESPONSE');
    } finally {
      a.close();
      b.close();
    }
  },
);

test('a destination that goes away ends the splice at the destination', { skip }, async () => {
  const a = await socketPair();
  const b = await socketPair();
  try {
    a.client.write(randomBytes(64 * 1024));
    const spliced = engine!.splice(fd(a.server), fd(b.client), 10 * 1024 * 1024, 5000);
    b.server.destroy();
    const ended = await spliced.ended;
    assert.equal(ended.side, 'destination');
    assert.ok(['ECONNRESET', 'EPIPE'].includes(ended.reason), ended.reason);
  } finally {
    a.close();
    b.close();
  }
});

test('a source that closes before the length ends the splice at the source', { skip }, async () => {
  const a = await socketPair();
  const b = await socketPair();
  try {
    const received = hashOf(b.server, 1000);
    a.client.end(randomBytes(1000));
    const ended = await engine!.splice(fd(a.server), fd(b.client), 5000, 5000).ended;
    assert.deepEqual([ended.side, ended.reason, ended.written], ['source', 'ECONNRESET', 1000]);
    await received;
  } finally {
    a.close();
    b.close();
  }
});

test(
  'no progress for idleMs ends it (ETIMEDOUT) on the side it waited for; cancel ends it at once',
  { skip },
  async () => {
    const a = await socketPair();
    const b = await socketPair();
    try {
      const started = Date.now();
      const idle = await engine!.splice(fd(a.server), fd(b.client), 100, 200).ended;
      assert.deepEqual([idle.side, idle.reason], ['source', 'ETIMEDOUT']);
      assert.ok(Date.now() - started >= 190);
      const transfer = engine!.splice(fd(a.server), fd(b.client), 100, 60_000);
      transfer.cancel();
      assert.deepEqual(
        [(await transfer.ended).reason, (await transfer.ended).side],
        ['ECANCELED', undefined],
      );
      assert.equal(engine!.active(), 0);
    } finally {
      a.close();
      b.close();
    }
  },
);

test(
  'a file written to in place while it is sent ends the sendfile at the source (ESTALE)',
  { skip },
  async () => {
    const size = 64 * 1024 * 1024;
    const path = join(ws.dir, 'changing');
    writeFileSync(path, randomBytes(size));
    const pair = await socketPair();
    const file = openSync(path, 'r');
    try {
      // Nobody reads: the socket's buffers fill, and the send waits with most of the file to go.
      const sent = engine!.sendfile(file, fd(pair.client), 0, size, 10_000);
      await new Promise((r) => setTimeout(r, 100));
      const writer = openSync(path, 'r+');
      writeSync(writer, Buffer.from('changed'), 0, 7, size - 100);
      closeSync(writer);
      pair.server.resume();
      const ended = await sent.ended;
      assert.deepEqual([ended.side, ended.reason], ['source', 'ESTALE']);
      assert.ok(ended.written < size, `${ended.written} of ${size} bytes left`);
    } finally {
      closeSync(file);
      pair.close();
    }
  },
);

test(
  'the engine works on duplicates: a socket Node destroys meanwhile never receives a stranger’s bytes',
  { skip },
  async () => {
    const a = await socketPair();
    const b = await socketPair();
    try {
      const transfer = engine!.splice(fd(a.server), fd(b.client), 1 << 20, 5000);
      // Node closes its descriptor; a new socket may get the same number at once.
      b.client.destroy();
      const c = await socketPair();
      // Bytes for the destroyed socket arrive now; they go where they were meant to, or nowhere.
      a.client.write(Buffer.alloc(4096, 'x'));
      await new Promise((r) => setTimeout(r, 100));
      transfer.cancel();
      const ended = await transfer.ended;
      assert.ok(['ECANCELED', 'EPIPE', 'ECONNRESET'].includes(ended.reason), ended.reason);
      c.client.write('still mine');
      c.server.resume();
      const [got] = (await once(c.server, 'data')) as [Buffer];
      assert.equal(got.toString(), 'still mine');
      c.close();
    } finally {
      a.close();
      b.close();
    }
  },
);
