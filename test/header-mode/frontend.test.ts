// OdbGateway (src/header-mode/frontend.ts) in one process: a real BufferStore + StoreServer, an
// upstream node:http server whose handler is wrapped by OdbBackend, and a node:http front server
// that offers the shortcut, inspects the answer and delivers from the store, as examples/frontend.ts
// does. Bodies are compared by SHA-256.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  createServer,
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { after, before, test } from 'node:test';
import { isOdbError, type OdbError } from '../../src/core/errors.js';
import { OdbBackend } from '../../src/header-mode/backend.js';
import { setDescriptorHeaders } from '../../src/header-mode/descriptor-response.js';
import { OdbGateway, answerBadGateway } from '../../src/header-mode/frontend.js';
import { descriptorToText, type Descriptor } from '../../src/protocol/descriptor.js';
import { MemoryPayload } from '../../src/store/payloads/memory.js';
import { get } from '../helpers/http.js';
import { eventually, scriptedServer, sha256 } from '../helpers/net.js';
import { startTestStore, testDescriptor, type TestStore } from '../helpers/store.js';

const threshold = 64 * 1024;
const large = randomBytes(3 * 1024 * 1024 + 17);
const small = randomBytes(threshold - 1);

let store: TestStore;
let backend: OdbBackend;
let gateway: OdbGateway;
let upstream: Server;
let front: Server;
let frontPort: number;
/** A listener a descriptor may name but the gateway does not allow: it must never be reached. */
let foreign: Awaited<ReturnType<typeof scriptedServer>>;
let foreignConnections = 0;
/** Request headers the upstream received, in order. */
const seenUpstream: IncomingHttpHeaders[] = [];
/** Why the front server refused a descriptor response, in order. */
const refusals: OdbError[] = [];

/** Writes `bytes` in 64 KiB writes, as an ordinary handler would. */
function writeBody(res: ServerResponse, bytes: Buffer): void {
  res.setHeader('content-type', 'application/octet-stream');
  res.setHeader('content-length', bytes.length);
  for (let at = 0; at < bytes.length; at += 64 * 1024)
    res.write(bytes.subarray(at, Math.min(bytes.length, at + 64 * 1024)));
  res.end();
}

/** Answers like a back end, with `descriptor` (signed by the store's key) as the payload. */
function answerDescriptor(res: ServerResponse, descriptor: Descriptor, text?: string): void {
  setDescriptorHeaders(res, descriptor, descriptor.length, store.key);
  if (text !== undefined) res.setHeader('odb-payload', text);
  res.writeHead(200).end();
}

/** The application behind the back end: knows nothing of ODB. */
function app(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/large') return writeBody(res, large);
  if (req.url === '/small') return writeBody(res, small);
  res.writeHead(404).end();
}

before(async () => {
  store = await startTestStore();
  backend = new OdbBackend({ store: store.store, thresholdBytes: threshold });
  foreign = await scriptedServer(() => foreignConnections++);
  gateway = new OdbGateway({ keyring: store.keyring, allowedStores: [store.endpoint] });
  const captured = backend.handler(app);
  upstream = createServer((req, res) => {
    seenUpstream.push({ ...req.headers });
    if (req.url === '/foreign') {
      // Signed with the cluster key, but naming a store this gateway does not allow.
      const descriptor = testDescriptor(store.key, `127.0.0.1:${foreign.port}`, large.length);
      return answerDescriptor(res, descriptor);
    }
    if (req.url === '/tampered') {
      // A real payload in the store, its descriptor altered on the way: one bit of the MAC.
      const payload = new MemoryPayload({ expectedSize: large.length });
      payload.append(large);
      payload.finish();
      const descriptor = store.store.register(payload, large.length)!;
      const bytes = Buffer.from(descriptor.bytes);
      bytes[bytes.length - 1]! ^= 0x01;
      return answerDescriptor(res, descriptor, bytes.toString('base64url'));
    }
    captured(req, res);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as { port: number }).port;
  front = createServer((req, res) => {
    const headers = gateway.offer({ ...req.headers });
    const proxied = request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers },
      (upstreamRes) => {
        let shortcut;
        try {
          shortcut = gateway.inspect(
            req.method,
            upstreamRes.statusCode!,
            upstreamRes.headers,
            upstreamRes.statusMessage,
          );
        } catch (err) {
          refusals.push(err as OdbError);
          upstreamRes.resume();
          answerBadGateway(res);
          return;
        }
        if (!shortcut) {
          res.writeHead(upstreamRes.statusCode!, upstreamRes.headers);
          upstreamRes.pipe(res);
          return;
        }
        upstreamRes.resume();
        void gateway.deliver(shortcut, res);
      },
    );
    proxied.on('error', () => answerBadGateway(res));
    req.pipe(proxied);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  frontPort = (front.address() as { port: number }).port;
});

after(async () => {
  for (const server of [front, upstream]) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await gateway.close();
  await foreign.close();
  await store.close();
});

const url = (path: string): string => `http://127.0.0.1:${frontPort}${path}`;

/** Asserts a refusal: the plain 502 of answerBadGateway, no ODB header, refused with `code`. */
async function expectRefused(path: string, code: string): Promise<void> {
  const refusedBefore = refusals.length;
  const failuresBefore = gateway.stats.failures[code as OdbError['code']] ?? 0;
  const r = await get(url(path), { keepBody: true });
  assert.equal(r.status, 502);
  // answerBadGateway's plain answer: the reason goes to the caller (here: refusals), not the client.
  assert.match(r.body!.toString(), /^Bad Gateway/);
  assert.equal(r.headers['content-length'], String(r.bytes));
  assert.deepEqual(
    Object.keys(r.headers).filter((h) => h.startsWith('odb-')),
    [],
  );
  assert.equal(refusals.length, refusedBefore + 1);
  const error = refusals.at(-1)!;
  assert.ok(isOdbError(error), String(error));
  assert.equal(error.code, code);
  assert.equal(gateway.stats.failures[error.code], failuresBefore + 1);
}

test('a large body comes byte-exact through the descriptor path, and the store releases it', async () => {
  const shortcuts = gateway.stats.shortcuts;
  const delivered = gateway.stats.deliveredBytes;
  const virtual = backend.stats.virtualResponses;
  const fetched = store.server.stats.fetchedBytes;
  const r = await get(url('/large'));
  assert.equal(r.status, 200);
  assert.equal(r.complete, true);
  assert.equal(r.headers['content-length'], String(large.length));
  assert.equal(r.headers['content-type'], 'application/octet-stream');
  assert.equal(r.bytes, large.length);
  assert.equal(r.sha256, sha256(large));
  assert.deepEqual(
    Object.keys(r.headers).filter((h) => h.startsWith('odb-')),
    [],
  );
  // The bytes went store → gateway, not through the upstream response.
  assert.equal(backend.stats.virtualResponses, virtual + 1);
  assert.equal(gateway.stats.shortcuts, shortcuts + 1);
  // The client may hold the last byte before the gateway and the store have counted it: the
  // kernel moved it, and their awaits resume a few turns later.
  await eventually(
    () =>
      gateway.stats.deliveredBytes === delivered + large.length &&
      store.server.stats.fetchedBytes === fetched + large.length,
    3000,
    'the delivery to be counted',
  );
  await eventually(() => store.store.stats.entries === 0, 3000, 'the payload to be released');
});

test('a small body is passed through unchanged, without a descriptor', async () => {
  const shortcuts = gateway.stats.shortcuts;
  const virtual = backend.stats.virtualResponses;
  const fetches = store.server.stats.fetches;
  const entries = store.store.stats.entries;
  const r = await get(url('/small'));
  assert.equal(r.status, 200);
  assert.equal(r.complete, true);
  assert.equal(r.headers['content-length'], String(small.length));
  assert.equal(r.sha256, sha256(small));
  assert.equal(gateway.stats.shortcuts, shortcuts);
  assert.equal(backend.stats.virtualResponses, virtual);
  assert.equal(store.server.stats.fetches, fetches);
  assert.equal(store.store.stats.entries, entries);
});

test('a descriptor naming a store not allowed → 502 ODB_ERR_FOREIGN_ENDPOINT, never connected to', async () => {
  await expectRefused('/foreign', 'ODB_ERR_FOREIGN_ENDPOINT');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(foreignConnections, 0);
});

test('a tampered descriptor (one MAC bit) → 502 ODB_ERR_BAD_MAC, nothing fetched', async () => {
  const fetches = store.server.stats.fetches;
  const entries = store.store.stats.entries;
  await expectRefused('/tampered', 'ODB_ERR_BAD_MAC');
  assert.equal(store.server.stats.fetches, fetches);
  // The upstream registered the payload; the gateway never asked for it (its TTL ends it).
  assert.equal(store.store.stats.entries, entries + 1);
});

test("the client's odb-* headers are stripped on the way up; only the offer goes", async () => {
  seenUpstream.length = 0;
  const injected = descriptorToText(testDescriptor(store.key, store.endpoint, 100));
  const r = await get(url('/small'), {
    headers: {
      'odb-payload': injected,
      'Odb-Accept': '7',
      'ODB-Head-Mac': 'x',
      'odb-anything': 'y',
      'x-kept': 'z',
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.sha256, sha256(small));
  const seen = seenUpstream[0]!;
  assert.deepEqual(
    Object.keys(seen).filter((h) => h.startsWith('odb-')),
    ['odb-accept'],
  );
  assert.equal(seen['odb-accept'], '1');
  assert.equal(seen['x-kept'], 'z');
});
