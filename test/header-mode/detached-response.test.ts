// A captured response is complete on the wire at its descriptor head: the connection serves the
// next request at once, while the handler keeps writing into a response that behaves, for it,
// like an open Node response until it ends it or the payload is abandoned (issue 13, item 4).
import assert from 'node:assert/strict';
import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type ServerResponse,
  type Server,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import { Readable, pipeline } from 'node:stream';
import { after, before, test } from 'node:test';
import { OdbBackend } from '../../src/header-mode/backend.js';
import { generateClusterKey, Keyring } from '../../src/core/keys/keyring.js';
import {
  descriptorFromText,
  verifyDescriptor,
  type Descriptor,
} from '../../src/protocol/descriptor.js';
import { StoreClient } from '../../src/store/client.js';
import { StoreServer } from '../../src/store/server.js';
import { BufferStore } from '../../src/store/store.js';
import { syntheticBytes } from '../../src/store/payloads/synthetic.js';
import { HashSink, eventually, sha256 } from '../helpers/net.js';

const keyring = new Keyring([generateClusterKey()]);
const store = new BufferStore({ keyring });
const storeServer = new StoreServer({ store });
const backend = new OdbBackend({ store, thresholdBytes: 10_000 });
const client = new StoreClient();
const servers: Server[] = [];
const sockets: Socket[] = [];
const body = syntheticBytes(5, 0, 200_000);

before(async () => {
  await storeServer.listen('127.0.0.1', 0);
});

after(async () => {
  for (const s of sockets) s.destroy();
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  storeServer.closeAllConnections();
  await storeServer.close();
  await client.close();
  store.close();
});

async function serve(handler: RequestListener): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/** A keep-alive connection that reads responses one head (and Content-Length body) at a time. */
function connection(port: number): { socket: Socket; next(): Promise<RawResponse> } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let buffered = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    wake?.();
  });
  socket.on('close', () => wake?.());
  const next = async (): Promise<RawResponse> => {
    for (;;) {
      const end = buffered.indexOf('\r\n\r\n');
      if (end !== -1) {
        const parsed = parseHead(buffered.subarray(0, end));
        const length = Number(parsed.headers['content-length'] ?? 0);
        if (buffered.length >= end + 4 + length) {
          const response = { ...parsed, body: buffered.subarray(end + 4, end + 4 + length) };
          buffered = buffered.subarray(end + 4 + length);
          return response;
        }
      }
      if (socket.destroyed) throw new Error('connection closed before a whole response');
      await new Promise<void>((r) => (wake = r));
    }
  };
  return { socket, next };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

function parseHead(raw: Buffer): Omit<RawResponse, 'body'> {
  const lines = raw.toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(lines[0]!.split(' ')[1]), headers };
}

function descriptorOf(response: RawResponse): Descriptor {
  const descriptor = descriptorFromText(response.headers['odb-payload']!);
  verifyDescriptor(descriptor, keyring, Date.now());
  return descriptor;
}

async function fetchAll(descriptor: Descriptor): Promise<string> {
  const sink = new HashSink();
  await client.fetch(descriptor, { start: () => sink }, { releaseOnComplete: true });
  return sink.digest();
}

const offer = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: t\r\nodb-accept: 1\r\n\r\n`;

/** A readable that gives `bytes` in 4 KiB pieces, one piece per turn, once `open` resolved. */
function trickle(bytes: Buffer, open: Promise<void>): Readable {
  let at = 0;
  return new Readable({
    read() {
      void open.then(() =>
        setImmediate(() => {
          this.push(at < bytes.length ? bytes.subarray(at, (at += 4096)) : null);
        }),
      );
    },
  });
}

test('the next request on the connection is answered while a captured body is still written', async () => {
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  const port = await serve(
    backend.handler((req, res) => {
      if (req.url === '/small') {
        res.end('small');
        return;
      }
      res.write(body.subarray(0, 20_000)); // past the threshold: the descriptor head goes out
      pipeline(trickle(body.subarray(20_000), open), res, () => {});
    }),
  );
  for (const pipelined of [false, true]) {
    const { socket, next } = connection(port);
    socket.write(offer('/big'));
    if (pipelined) socket.write(offer('/small'));
    const first = await next();
    assert.equal(first.status, 200);
    assert.equal(first.headers['content-length'], '0');
    assert.equal(first.headers.connection, 'keep-alive');
    if (!pipelined) socket.write(offer('/small'));
    // The handler of /big has not finished (it waits for `open`): the answer must not wait for it.
    const second = await Promise.race([
      next(),
      new Promise<never>((_r, reject) =>
        setTimeout(() => reject(new Error('the next request waited for the body')), 2000),
      ),
    ]);
    assert.equal(second.body.toString(), 'small');
    release();
    assert.equal(await fetchAll(descriptorOf(first)), sha256(body));
    socket.destroy();
  }
});

test('a detached response keeps its writable lifecycle for the handler: finish, then close', async () => {
  const seen: string[] = [];
  let piped: Promise<Error | null | undefined> | undefined;
  const states: Record<string, boolean>[] = [];
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  const port = await serve(
    backend.handler((_req, res: ServerResponse) => {
      res.on('finish', () => seen.push('finish'));
      res.on('close', () => seen.push('close'));
      const state = (): Record<string, boolean> => ({
        writableEnded: res.writableEnded,
        destroyed: res.destroyed,
      });
      res.write(body.subarray(0, 20_000));
      states.push(state());
      piped = new Promise((resolve) =>
        pipeline(trickle(body.subarray(20_000), open), res, (err) => {
          states.push(state());
          resolve(err);
        }),
      );
    }),
  );
  const { socket, next } = connection(port);
  socket.write(offer('/'));
  const response = await next();
  // Node is done with the wire exchange now (and emits its own 'close' on res): not the handler's.
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(seen, []);
  release();
  assert.equal(await fetchAll(descriptorOf(response)), sha256(body));
  assert.equal(await piped, undefined);
  await eventually(() => seen.length === 2, 2000, "'close' after 'finish'");
  assert.deepEqual(seen, ['finish', 'close']);
  assert.deepEqual(states, [
    { writableEnded: false, destroyed: false },
    // As for a plain Node response, pipeline calls back after 'close'.
    { writableEnded: true, destroyed: true },
  ]);
});

test('an abandoned payload closes the detached response, which stops a piping producer', async () => {
  let source: Readable | undefined;
  let pipelineError: Error | null | undefined;
  const port = await serve(
    backend.handler((_req, res) => {
      let n = 0;
      // Endless, and slow enough to fill no window: only the response closing stops it.
      source = new Readable({
        read() {
          setTimeout(() => this.push(syntheticBytes(n++, 0, 16_384)), 5);
        },
      });
      pipeline(source, res, (err) => (pipelineError = err));
    }),
  );
  const { socket, next } = connection(port);
  socket.write(offer('/'));
  const descriptor = descriptorOf(await next());
  // Nobody fetches: the release drops the payload (the store's answer to a client gone away).
  await client.release(descriptor);
  await eventually(() => source?.destroyed === true, 3000, 'the producer stopped');
  assert.equal(
    (pipelineError as NodeJS.ErrnoException | undefined)?.code,
    'ERR_STREAM_PREMATURE_CLOSE',
  );
});

test('without Node’s connection release to call, the head closes the connection instead', async () => {
  const port = await serve((req: IncomingMessage, res: ServerResponse) => {
    // Hide the server's release, as a Node version with other internals would.
    for (const listener of res.rawListeners('finish')) {
      Object.defineProperty(listener, 'name', { value: 'unknown' });
    }
    backend.capture(req, res);
    res.write(body.subarray(0, 20_000));
    pipeline(trickle(body.subarray(20_000), Promise.resolve()), res, () => {});
  });
  const { socket, next } = connection(port);
  socket.write(offer('/'));
  const response = await next();
  assert.equal(response.headers.connection, 'close');
  assert.equal(await fetchAll(descriptorOf(response)), sha256(body));
  await eventually(() => socket.destroyed || socket.readableEnded, 2000, 'the server closed');
});
