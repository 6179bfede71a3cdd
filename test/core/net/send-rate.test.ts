// The minimum send rate over real loopback sockets: a server keeps bytes queued for each client,
// as a tier does while it delivers a large body; the watchdog cuts only those that stop taking them.
import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { after, test } from 'node:test';
import { SendWatchdog, earnedDeadline } from '../../../src/core/net/send-rate.js';
import { eventually } from '../../helpers/net.js';
import { rawGet, neverReads, type ReadPace, type RawReader } from '../../helpers/slow-readers.js';

const timeoutMs = 1500;
const watchdog = new SendWatchdog({ timeoutMs, minBytesPerSecond: 64 * 1024 });
const piece = Buffer.alloc(64 * 1024, 7);

/** Answers every connection with an endless body in 64 KiB writes, with backpressure. */
const server: Server = createServer((socket) => {
  watchdog.watch(socket);
  socket.on('error', () => {});
  socket.once('data', (request) => {
    if (request.includes('/idle')) return; // a request waiting on a slow upstream: nothing queued
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1099511627776\r\n\r\n');
    const feed = (): void => {
      while (!socket.destroyed && socket.write(piece));
      if (!socket.destroyed) socket.once('drain', feed);
    };
    feed();
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as { port: number }).port;
const clients: RawReader[] = [];

after(async () => {
  for (const c of clients) c.destroy();
  watchdog.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function client(path: string, pace: ReadPace): Promise<RawReader> {
  const c = await rawGet('127.0.0.1', port, path, pace);
  clients.push(c);
  return c;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test('send rate: a client that stops reading is reset and counted; a reading or idle one is not', async () => {
  const stalled = await client('/stalled', neverReads);
  // About 2.7 MiB/s, forty times the minimum: its progress shows every ~0.6 s on loopback.
  const reading = await client('/reading', { bytesPerTick: 16 * 1024, tickMs: 5 });
  const idle = connect(port, '127.0.0.1'); // a request waiting on a slow upstream: nothing queued
  idle.on('error', () => {});
  idle.write('GET /idle HTTP/1.1\r\n\r\n');
  const started = Date.now();
  await eventually(() => watchdog.stats.cut > 0, 10_000, 'the cut');
  // The kernel's buffers fill first, then the deadline runs: never before the timeout.
  assert.ok(Date.now() - started >= timeoutMs, `cut after ${Date.now() - started} ms`);
  stalled.socket.resume();
  await eventually(() => stalled.closed(), 5000, 'the client to see the reset');
  await sleep(timeoutMs * 2.5 - (Date.now() - started));
  assert.equal(watchdog.stats.cut, 1);
  assert.equal(reading.closed(), false);
  assert.ok(reading.bodyBytes() > 4 * 1024 * 1024, `read ${reading.bodyBytes()} bytes`);
  assert.equal(idle.destroyed, false);
  idle.destroy();
});

test('send rate: each byte buys 1/rate seconds, capped at the timeout', () => {
  const limits = { timeoutMs: 60_000, minBytesPerSecond: 1000 };
  // Taking exactly the rate keeps the deadline where it was relative to now.
  assert.equal(earnedDeadline(60_000, 1000, 1000, limits), 61_000);
  // Taking half the rate: the deadline moves half as fast as time, so it is reached in 2×timeout.
  let deadline = 60_000;
  let now = 0;
  while (now < deadline) {
    now += 1000;
    deadline = earnedDeadline(deadline, now, 500, limits);
  }
  assert.equal(now, 120_000);
  // A fast start banks no more than the timeout.
  assert.equal(earnedDeadline(60_000, 1000, 10_000_000, limits), 61_000);
  // Nothing taken: nothing earned.
  assert.equal(earnedDeadline(60_000, 1000, 0, limits), 60_000);
  // Without a rate, any progress restarts the timeout (nginx's send_timeout).
  assert.equal(earnedDeadline(5000, 4000, 1, { timeoutMs: 60_000, minBytesPerSecond: 0 }), 64_000);
});

test('send rate: a steady slow reader above the rate is judged by what it acknowledges, not cut', async (t) => {
  // 50 KB/s, six times the minimum of 8 KiB/s. Node alone sees progress only when the kernel's
  // send buffer (MiBs on loopback) drains far enough to take another write: many seconds here.
  const slow = new SendWatchdog({ timeoutMs: 3000, minBytesPerSecond: 8 * 1024 });
  const feeder = createServer((socket) => {
    slow.watch(socket);
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1099511627776\r\n\r\n');
      const feed = (): void => {
        while (!socket.destroyed && socket.write(piece));
        if (!socket.destroyed) socket.once('drain', feed);
      };
      feed();
    });
  });
  await new Promise<void>((resolve) => feeder.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    slow.close();
    await new Promise<void>((resolve) => feeder.close(() => resolve()));
  });
  const { port: feederPort } = feeder.address() as { port: number };
  const reader = await rawGet('127.0.0.1', feederPort, '/steady', {
    bytesPerTick: 4096,
    tickMs: 80,
  });
  clients.push(reader);
  await sleep(9000);
  assert.equal(slow.stats.cut, 0, `cut after reading ${reader.bodyBytes()} bytes`);
  assert.equal(reader.closed(), false);
  reader.destroy();
});
