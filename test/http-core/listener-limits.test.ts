// Every listener has limits, each configurable and counted when hit (issue 13, items 5 and 12):
// connections, idle connections before a first request, head size, header count, requests per
// connection, slow request bodies; and the wait for an upstream connection is bounded. A real
// `odb is` with small limits, raw sockets as the clients.
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { eventually, rawExchange } from '../helpers/net.js';

let upstream: Server;
let upstreamPort: number;
/** Milliseconds the upstream waits before answering `/slow`. */
const slowMs = 3000;
const opened: Socket[] = [];
const running: OdbProcess[] = [];

before(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = (): void => void res.end(`ok ${req.method} ${req.url}`);
      if (req.url === '/slow') setTimeout(answer, slowMs);
      else answer();
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as { port: number }).port;
});

after(async () => {
  for (const s of opened) s.destroy();
  await Promise.all(running.map((p) => p.stop()));
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

async function intermediate(extra: string[]): Promise<{ is: OdbProcess; port: number }> {
  const is = await startOdbProcess('is', [
    'is',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://127.0.0.1:${upstreamPort}`,
    '--metrics-listen',
    '127.0.0.1:0',
    '--log-level',
    'warn',
    ...extra,
  ]);
  running.push(is);
  return { is, port: Number(is.addresses.http!.split(':')[1]) };
}

async function hits(is: OdbProcess, limit: string): Promise<number> {
  return metricValue(await scrape(is.addresses.metrics!), 'odb_limit_hits_total', {
    listener: 'client',
    limit,
  });
}

function status(data: Buffer): string | undefined {
  return /^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1'))?.[1];
}

/** A GET with node:http on a fresh connection; resolves with status and milliseconds taken. */
function timedGet(port: number, path = '/'): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, ms: Date.now() - started }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('idle connections: beyond --max-connections closed at once, the rest after --header-timeout', async () => {
  const { is, port } = await intermediate(['--max-connections', '20', '--header-timeout', '1s']);
  const closedAt: number[] = [];
  const started = Date.now();
  for (let i = 0; i < 200; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.resume(); // reads, so that it sees the listener's answer and close
    s.on('close', () => closedAt.push(Date.now() - started));
    opened.push(s);
  }
  await eventually(() => closedAt.length === 200, 5000, 'every idle connection closed');
  const early = closedAt.filter((ms) => ms < 800).length;
  assert.ok(early >= 180, `${early} connections closed at once`);
  assert.ok(
    closedAt.filter((ms) => ms >= 800).length <= 20,
    'only the accepted ones waited for the header timeout',
  );
  assert.ok((await hits(is, 'connections')) >= 180);
  assert.ok((await hits(is, 'header_timeout')) >= 1);
  // Nothing else slowed down: a request now is served at once.
  const r = await timedGet(port);
  assert.equal(r.status, 200);
  assert.ok(r.ms < 500, `a request took ${r.ms} ms after the flood`);
});

test('a request head too large or with too many fields is a 431, counted', async () => {
  const { is, port } = await intermediate(['--max-header-size', '2KiB', '--max-headers', '10']);
  const big = await rawExchange(
    port,
    `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(3000)}\r\n\r\n`,
    300,
  );
  assert.equal(status(big.data), '431');
  const fields = Array.from({ length: 11 }, (_, i) => `X-${i}: v\r\n`).join('');
  const many = await rawExchange(port, `GET / HTTP/1.1\r\nHost: x\r\n${fields}\r\n`, 300);
  assert.equal(status(many.data), '431');
  const fine = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nX-1: v\r\n\r\n', 300);
  assert.equal(status(fine.data), '200');
  assert.equal(await hits(is, 'header_size'), 1);
  assert.equal(await hits(is, 'headers'), 1);
});

test('--max-requests-per-connection closes a keep-alive connection after that many', async () => {
  const { is, port } = await intermediate(['--max-requests-per-connection', '3']);
  const one = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  const { data, closed } = await rawExchange(port, one.repeat(5), 1000);
  const answers = [...data.toString('latin1').matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
  assert.deepEqual(answers.slice(0, 3), ['200', '200', '200']);
  assert.ok(!answers.slice(3).includes('200'), `answers ${answers.join(',')}`);
  assert.equal(closed, true);
  assert.equal(await hits(is, 'requests_per_connection'), 1);
});

test('slow uploaders are cut by the body deadline and cannot hold the upstream connections', async () => {
  const { is, port } = await intermediate([
    '--connections',
    '2',
    '--body-timeout',
    '1s',
    '--body-min-rate',
    '1KiB',
  ]);
  const uploaders = Array.from({ length: 8 }, () => {
    const s = connect(port, '127.0.0.1');
    opened.push(s);
    s.on('error', () => {});
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    const drip = setInterval(() => s.writable && s.write('x'), 300);
    return new Promise<string>((resolve) =>
      s.on('close', () => {
        clearInterval(drip);
        resolve(answer);
      }),
    );
  });
  const started = Date.now();
  const answers = await Promise.all(uploaders);
  const took = Date.now() - started;
  assert.ok(took < 5000, `slow uploads held on for ${took} ms`);
  for (const a of answers) assert.match(a, /^HTTP\/1\.1 408 /);
  assert.equal(await hits(is, 'body_timeout'), 8);
  const r = await timedGet(port);
  assert.equal(r.status, 200);
  assert.ok(r.ms < 500);
});

test('waiting for an upstream connection is bounded: 503 when the queue is full or too slow', async () => {
  const { is, port } = await intermediate([
    '--connections',
    '1',
    '--upstream-queue-max',
    '2',
    '--upstream-queue-timeout',
    '1s',
  ]);
  const first = timedGet(port, '/slow'); // holds the one upstream connection for 3 s
  await new Promise((r) => setTimeout(r, 100));
  const queued = [timedGet(port, '/a'), timedGet(port, '/b')];
  await new Promise((r) => setTimeout(r, 100));
  const refused = await timedGet(port, '/c');
  assert.equal(refused.status, 503);
  assert.ok(refused.ms < 500, `queue-full answer took ${refused.ms} ms`);
  for (const r of await Promise.all(queued)) {
    assert.equal(r.status, 503);
    assert.ok(r.ms >= 900 && r.ms < 2500, `queued request answered after ${r.ms} ms`);
  }
  assert.equal((await first).status, 200);
  const metrics = await scrape(is.addresses.metrics!);
  assert.equal(metricValue(metrics, 'odb_upstream_queue_rejections_total', { reason: 'full' }), 1);
  assert.equal(
    metricValue(metrics, 'odb_upstream_queue_rejections_total', { reason: 'timeout' }),
    2,
  );
  // Once the upstream is free again, requests are served.
  assert.equal((await timedGet(port, '/d')).status, 200);
});

test('the last request a connection may carry, and a cut upload, leave the tier running', async () => {
  // Attack found after the limits landed: the guard read `req.socket` once Node had cleared it.
  const { is, port } = await intermediate([
    '--max-requests-per-connection',
    '3',
    '--body-timeout',
    '1s',
    '--body-min-rate',
    '1KiB',
  ]);
  const get1 = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  const post = 'POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello';
  const { data } = await rawExchange(port, get1 + get1 + post, 1000);
  assert.equal([...data.toString('latin1').matchAll(/HTTP\/1\.1 200/g)].length, 3);
  const slow = connect(port, '127.0.0.1');
  opened.push(slow);
  slow.on('error', () => {});
  slow.resume();
  slow.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
  const drip = setInterval(() => slow.writable && slow.write('a'), 200);
  await new Promise((r) => slow.once('close', r));
  clearInterval(drip);
  await new Promise((r) => setTimeout(r, 1500)); // past the guard's own follow-up timer
  assert.equal(is.child.exitCode, null, is.stderr());
  assert.equal((await timedGet(port)).status, 200);
});

test('pipelined requests are handled one at a time: a client that never reads cannot wedge the relay', async () => {
  const { is, port } = await intermediate(['--connections', '4', '--upstream-queue-timeout', '1s']);
  // 100 requests ahead on one connection whose answers are never read, then gone.
  const flood = connect(port, '127.0.0.1');
  opened.push(flood);
  flood.on('error', () => {});
  flood.pause();
  flood.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(30));
  await new Promise((r) => setTimeout(r, 300));
  // Others are served meanwhile: one upstream connection is the flood's, the rest are free.
  const during = await timedGet(port);
  assert.equal(during.status, 200);
  assert.ok(during.ms < 900, `a request took ${during.ms} ms next to the pipelined flood`);
  flood.destroy();
  // And after it left, everything is served at once (it held nothing back).
  const answers = await Promise.all(Array.from({ length: 8 }, () => timedGet(port)));
  for (const r of answers) assert.equal(r.status, 200);
  // More than --max-pipelined requests ahead close the connection, counted.
  const deep = await rawExchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(40), 500);
  assert.equal(deep.closed, true);
  assert.ok((await hits(is, 'pipelined')) >= 1);
});
