// HttpRelay (src/tiers/http-relay.ts), the reverse-proxy core of `odb fe` and `odb is`, built in
// this process in front of a real node:http upstream: exact bytes (SHA-256), hop-by-hop headers
// dropped both ways, a dead upstream, and the bound on requests waiting for a connection.
import assert from 'node:assert/strict';
import {
  createServer,
  request,
  type IncomingHttpHeaders,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import { after, test } from 'node:test';
import { HttpRelay, type HttpRelayOptions } from '../../src/tiers/http-relay.js';
import { syntheticChunks, syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { get, type Received } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';

const seed = 11;
/** A broken relay hangs rather than fails (undici waits 60 s for a head): a deadline each. */
const timeout = 10_000;
/** Request headers the upstream received, by path. */
const seen = new Map<string, IncomingHttpHeaders>();
/** Responses of `/hold/…` the upstream has not answered yet. */
const held: ServerResponse[] = [];
const closers: (() => Promise<void>)[] = [];

after(async () => {
  for (const close of closers.reverse()) await close();
});

async function listen(handler: RequestListener): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { server, port: (server.address() as { port: number }).port };
}

/** The upstream: synthetic bytes, hop-by-hop headers, and responses held until released. */
const upstream = await listen((req, res) => {
  seen.set(req.url!, { ...req.headers });
  const bytes = /^\/bytes\/(\d+)/.exec(req.url!);
  if (bytes) {
    const size = Number(bytes[1]);
    res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
    const chunks = syntheticChunks(seed, 0, size);
    const pump = (): void => {
      for (let next = chunks.next(); !next.done; next = chunks.next())
        if (!res.write(next.value)) return void res.once('drain', pump);
      res.end();
    };
    return pump();
  }
  if (req.url === '/hop') {
    res.writeHead(200, {
      connection: 'x-server-hop',
      'x-server-hop': 'connection-specific',
      'keep-alive': 'timeout=99',
      'proxy-authenticate': 'Basic realm="upstream"',
      upgrade: 'h2c',
      trailer: 'x-never-sent',
      'x-end-to-end': 'kept',
    });
    return void res.end('ok');
  }
  if (req.url!.startsWith('/hold/')) return void held.push(res);
  res.writeHead(404).end();
});

/** A relay (closed after the file) and a front server using it. */
async function relayed(options: Partial<HttpRelayOptions> = {}): Promise<{
  relay: HttpRelay;
  url: (path: string) => string;
}> {
  const relay = new HttpRelay({ upstreams: [`http://127.0.0.1:${upstream.port}`], ...options });
  closers.push(() => relay.close());
  const front = await listen(relay.handle);
  return { relay, url: (path) => `http://127.0.0.1:${front.port}${path}` };
}

const { relay, url } = await relayed();

test('a large body comes through byte-exact, with its Content-Length', { timeout }, async () => {
  const size = 16 * 1024 * 1024 + 5;
  const before = relay.stats.relayedBodyBytes;
  const r = await get(url(`/bytes/${size}`));
  assert.equal(r.status, 200);
  assert.equal(r.complete, true);
  assert.equal(r.headers['content-length'], String(size));
  assert.equal(r.bytes, size);
  assert.equal(r.sha256, syntheticSha256(seed, 0, size));
  assert.equal(relay.stats.relayedBodyBytes, before + size);
});

test('hop-by-hop headers are dropped both ways, end-to-end ones kept', { timeout }, async () => {
  const r = await new Promise<Received>((resolve, reject) => {
    const req = request(url('/hop'), {
      agent: false,
      headers: {
        connection: 'x-client-hop',
        'x-client-hop': 'connection-specific',
        'keep-alive': 'timeout=7',
        te: 'trailers',
        'proxy-authorization': 'Basic eDp5',
        'x-end-to-end': 'sent',
      },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          bytes: 0,
          sha256: '',
          complete: res.complete,
          reusedSocket: false,
          body: Buffer.concat(parts),
        }),
      );
    });
    req.end();
  });
  const up = seen.get('/hop')!;
  for (const name of ['x-client-hop', 'keep-alive', 'te', 'proxy-authorization'])
    assert.equal(up[name], undefined, `${name} reached the upstream`);
  assert.doesNotMatch(String(up.connection ?? ''), /x-client-hop/);
  assert.equal(up['x-end-to-end'], 'sent');
  assert.equal(r.status, 200);
  assert.equal(r.body!.toString(), 'ok');
  for (const name of ['x-server-hop', 'proxy-authenticate', 'upgrade', 'trailer'])
    assert.equal(r.headers[name], undefined, `${name} reached the client`);
  // Connection and Keep-Alive the client sees are the relay's own, not the upstream's.
  assert.doesNotMatch(String(r.headers.connection ?? ''), /x-server-hop/);
  assert.notEqual(r.headers['keep-alive'], 'timeout=99');
  assert.equal(r.headers['x-end-to-end'], 'kept');
});

test('a dead upstream → 502 Bad Gateway, counted as an upstream failure', { timeout }, async () => {
  const gone = await listen(() => {});
  const port = gone.port;
  gone.server.close();
  const dead = new HttpRelay({ upstreams: [`http://127.0.0.1:${port}`] });
  closers.push(() => dead.close());
  const front = await listen(dead.handle);
  const r = await get(`http://127.0.0.1:${front.port}/anything`, { keepBody: true });
  assert.equal(r.status, 502);
  assert.match(r.body!.toString(), /^Bad Gateway/);
  assert.equal(r.headers['content-length'], String(r.bytes));
  assert.equal(dead.stats.upstreamFailures, 1);
});

test(
  'requests waiting for a connection are bounded: beyond maxQueued, 503 at once',
  { timeout },
  async () => {
    const size = 1024 * 1024;
    const busy = await relayed({ connectionsPerUpstream: 1, queue: { maxQueued: 1 } });
    // One on the only connection (the upstream holds its answer), one waiting: the queue is full.
    const onConnection = get(busy.url('/hold/a'));
    await eventually(() => held.length === 1, 3000, 'the first request to reach the upstream');
    const waiting = get(busy.url(`/bytes/${size}?waiting`));
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    const refused = await get(busy.url('/bytes/10?refused'), { keepBody: true });
    assert.ok(Date.now() - started < 1000, 'the 503 came at once');
    assert.equal(refused.status, 503);
    assert.match(refused.body!.toString(), /^Service Unavailable/);
    assert.equal(busy.relay.stats.upstreamQueueFull, 1);
    assert.equal(seen.has('/bytes/10?refused'), false);
    // Once the connection is free, the waiting request is served, exactly.
    held.shift()!.end('held');
    assert.equal((await onConnection).status, 200);
    const served = await waiting;
    assert.equal(served.status, 200);
    assert.equal(served.sha256, syntheticSha256(seed, 0, size));
    assert.equal(busy.relay.stats.upstreamQueueTimeouts, 0);
  },
);

test(
  'a request waiting longer than the queue timeout → 503 (ODB_ERR_UPSTREAM_BUSY), not 502',
  { timeout },
  async () => {
    const busy = await relayed({ connectionsPerUpstream: 1, queue: { timeoutMs: 200 } });
    const onConnection = get(busy.url('/hold/b'));
    await eventually(() => held.length === 1, 3000, 'the first request to reach the upstream');
    const started = Date.now();
    const late = await get(busy.url('/bytes/10?late'), { keepBody: true });
    const took = Date.now() - started;
    assert.equal(late.status, 503);
    assert.match(late.body!.toString(), /^Service Unavailable/);
    assert.ok(took >= 150 && took < 2000, `503 after ${took} ms with a 200 ms queue timeout`);
    assert.equal(busy.relay.stats.upstreamQueueTimeouts, 1);
    assert.equal(busy.relay.stats.upstreamFailures, 0);
    held.shift()!.end('held');
    assert.equal((await onConnection).status, 200);
    // The abandoned request never reaches the upstream once the connection is free.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(seen.has('/bytes/10?late'), false);
  },
);
