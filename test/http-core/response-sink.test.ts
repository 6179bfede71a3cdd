// ResponseSink (src/http-core/response-sink.ts), the per-byte path of every relay: an undici
// dispatch against a real local HTTP server, its body written into a Node writable. Exact bytes
// (SHA-256), backpressure from a slow writable, and a destination that closes mid-body.
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Client } from 'undici';
import {
  DestinationClosedError,
  ResponseSink,
  type ResponseHeaders,
} from '../../src/http-core/response-sink.js';
import { syntheticChunks, syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { HashSink, eventually } from '../helpers/net.js';

const seed = 3;
/** A broken sink hangs rather than fails: every case has a deadline. */
const timeout = 10_000;
let server: Server;
let client: Client;
/** What the server did with each response, by request path. */
const served = new Map<string, { written: number; finished: boolean; closed: boolean }>();

/** Writes `size` synthetic bytes to `res`, waiting for 'drain' whenever write says so. */
async function writeSynthetic(res: ServerResponse, size: number, path: string): Promise<void> {
  const state = { written: 0, finished: false, closed: false };
  served.set(path, state);
  res.on('finish', () => (state.finished = true));
  res.on('close', () => (state.closed = true));
  res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
  for (const chunk of syntheticChunks(seed, 0, size)) {
    if (res.destroyed) return;
    state.written += chunk.length;
    if (!res.write(chunk))
      await new Promise<void>((resolve) => {
        res.once('drain', resolve);
        res.once('close', resolve);
      });
  }
  res.end();
}

before(async () => {
  server = createServer((req, res) => {
    const size = Number(/^\/bytes\/(\d+)/.exec(req.url ?? '')?.[1]);
    if (!Number.isSafeInteger(size)) return void res.writeHead(404).end();
    void writeSynthetic(res, size, req.url!);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  client = new Client(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
});

after(async () => {
  await client.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

interface Outcome {
  readonly err: Error | undefined;
  readonly bytes: number;
  readonly status: number;
  readonly headers: ResponseHeaders;
  /** The destination had finished (every byte flushed) when onDone was called. */
  readonly finishedAtDone: boolean;
}

/** GETs `path` through a ResponseSink writing into `destination`. */
function fetchInto(path: string, destination: Writable): Promise<Outcome> {
  return new Promise((resolve) => {
    let status = 0;
    let headers: ResponseHeaders = {};
    const sink = new ResponseSink({
      onHead: (statusCode, h) => {
        status = statusCode;
        headers = h;
        return destination;
      },
      onDone: (err, bytes) =>
        resolve({ err, bytes, status, headers, finishedAtDone: destination.writableFinished }),
    });
    client.dispatch({ path, method: 'GET' }, sink);
  });
}

test(
  'the body goes into the writable byte-exact, which is ended before onDone',
  { timeout },
  async () => {
    const size = 8 * 1024 * 1024 + 123;
    const destination = new HashSink();
    const outcome = await fetchInto(`/bytes/${size}?exact`, destination);
    assert.equal(outcome.err, undefined);
    assert.equal(outcome.status, 200);
    assert.equal(outcome.headers['content-length'], String(size));
    assert.equal(outcome.bytes, size);
    assert.equal(outcome.finishedAtDone, true);
    assert.equal(destination.bytes, size);
    assert.equal(destination.digest(), syntheticSha256(seed, 0, size));
  },
);

test(
  'a slow writable pauses the upstream: bytes buffered stay bounded, and exact',
  { timeout },
  async () => {
    const size = 32 * 1024 * 1024;
    const path = `/bytes/${size}?slow`;
    const highWaterMark = 64 * 1024;
    const bytesPerMs = 32 * 1024; // 32 MiB/s: a second for the body, the server could go far faster
    const inner = new HashSink();
    let consumed = 0;
    let maxBuffered = 0;
    let maxAhead = 0;
    const destination = new Writable({
      highWaterMark,
      write(chunk: Buffer, _encoding, cb) {
        maxBuffered = Math.max(maxBuffered, this.writableLength);
        const state = served.get(path);
        if (state) maxAhead = Math.max(maxAhead, state.written - consumed);
        setTimeout(
          () => {
            consumed += chunk.length;
            inner.write(chunk, cb);
          },
          Math.max(1, Math.round(chunk.length / bytesPerMs)),
        );
      },
    });
    const outcome = await fetchInto(path, destination);
    assert.equal(outcome.err, undefined);
    assert.equal(outcome.bytes, size);
    assert.equal(inner.bytes, size);
    assert.equal(inner.digest(), syntheticSha256(seed, 0, size));
    // The writable holds at most its high-water mark plus what undici had parsed when it was told
    // to pause (one socket read, 64 KiB): measured 122 KiB; 1 MiB leaves room. Without the pause
    // it held the whole body (measured 31 MiB of 32).
    assert.ok(maxBuffered <= 1024 * 1024, `the writable held up to ${maxBuffered} bytes`);
    // What the server wrote and nobody consumed yet is in the sockets' kernel buffers (a few MiB
    // on loopback, measured 4.8 MiB) and undici's: bounded well below the body, which the server
    // would otherwise have written long before the writable took it.
    assert.ok(maxAhead <= size / 2, `the server ran ${maxAhead} bytes ahead of the writable`);
  },
);

test(
  'a destination closing mid-body aborts the fetch with DestinationClosedError',
  { timeout },
  async () => {
    const size = 64 * 1024 * 1024;
    const path = `/bytes/${size}?closing`;
    let received = 0;
    const destination = new Writable({
      write(chunk: Buffer, _encoding, cb) {
        received += chunk.length;
        // Like a client that goes away after the first bytes.
        if (received >= 256 * 1024) destination.destroy();
        cb();
      },
    });
    const outcome = await fetchInto(path, destination);
    assert.ok(outcome.err instanceof DestinationClosedError, String(outcome.err));
    assert.equal(outcome.err.name, 'DestinationClosedError');
    assert.ok(outcome.bytes < size, `${outcome.bytes} of ${size} bytes`);
    // The upstream exchange ends too: the server's response is cut, not sent to its end.
    await eventually(
      () => served.get(path)?.closed === true,
      3000,
      'the upstream response to close',
    );
    const state = served.get(path)!;
    assert.equal(state.finished, false);
    assert.ok(state.written < size, `the server wrote ${state.written} of ${size} bytes`);
  },
);
