/**
 * Echo benchmark peers (the kernel-bypass study's method, ch. 5; see docs/architecture.md, "Sources"): many persistent
 * connections exchanging small messages, to measure what ODB's framing costs when nothing is
 * bypassed. `plain` echoes raw bytes; `framed` wraps every write in stream-mode R frames and
 * decodes them on receipt, as an ODB connection does.
 *
 *   node dist/bench/echo-peer.js server --listen HOST:PORT --framing plain|framed
 *   node dist/bench/echo-peer.js client --connect HOST:PORT --framing plain|framed --size N
 *        --connections N --duration MS --warmup MS
 *
 * The server prints `{"ready":…}`; the client prints one JSON line with its figures.
 */
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { parseHostPort } from '../src/core/net/address.js';
import { FrameDecoder, frameReal } from '../src/protocol/frame.js';

type Framing = 'plain' | 'framed';

/** Calls `onBytes` with payload bytes as they arrive on `socket`, whatever the framing. */
function onPayload(socket: Socket, framing: Framing, onBytes: (chunk: Buffer) => void): void {
  if (framing === 'plain') {
    socket.on('data', onBytes);
    return;
  }
  const decoder = new FrameDecoder();
  socket.on('data', (data: Buffer) => {
    try {
      decoder.push(data, (event) => {
        if (event.type === 'real') onBytes(event.bytes);
      });
    } catch {
      socket.destroy();
    }
  });
}

function send(socket: Socket, framing: Framing, bytes: Buffer): void {
  if (framing === 'plain') {
    socket.write(bytes);
    return;
  }
  const parts = frameReal(bytes);
  if (parts.length === 1) {
    socket.write(parts[0]!);
    return;
  }
  socket.cork();
  for (const part of parts) socket.write(part);
  socket.uncork();
}

function serve(listen: string, framing: Framing): void {
  const { host, port } = parseHostPort(listen);
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    onPayload(socket, framing, (chunk) => send(socket, framing, chunk));
  });
  server.listen(port, host, () => {
    const address = server.address() as { address: string; port: number };
    console.log(JSON.stringify({ ready: `${address.address}:${address.port}`, pid: process.pid }));
  });
  process.on('SIGTERM', () => process.exit(0));
}

async function load(
  target: string,
  framing: Framing,
  size: number,
  connections: number,
  durationMs: number,
  warmupMs: number,
): Promise<void> {
  const { host, port } = parseHostPort(target);
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const message = Buffer.alloc(size, 0x61);
  let measuring = false;
  let stopped = false;
  let exchanges = 0;
  const worker = async (): Promise<void> => {
    const socket = connect({ host, port, noDelay: true });
    await new Promise<void>((resolve, reject) =>
      socket.once('connect', resolve).once('error', reject),
    );
    let pending = 0;
    let done: (() => void) | undefined;
    onPayload(socket, framing, (chunk) => {
      pending -= chunk.length;
      if (pending <= 0) done?.();
    });
    while (!stopped) {
      const started = process.hrtime.bigint();
      pending = size;
      await new Promise<void>((resolve) => {
        done = resolve;
        send(socket, framing, message);
      });
      if (measuring) {
        exchanges++;
        histogram.recordValue(Number((process.hrtime.bigint() - started) / 1000n));
      }
    }
    socket.destroy();
  };
  const workers = Array.from({ length: connections }, worker);
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  console.log(JSON.stringify({ event: 'measuring' }));
  const start = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  stopped = true;
  await Promise.all(workers);
  console.log(
    JSON.stringify({
      event: 'result',
      framing,
      size,
      connections,
      exchanges,
      exchangesPerSecond: (exchanges * 1000) / elapsedMs,
      latencyUs: {
        p50: histogram.getValueAtPercentile(50),
        p95: histogram.getValueAtPercentile(95),
        p99: histogram.getValueAtPercentile(99),
      },
    }),
  );
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    listen: { type: 'string', default: '127.0.0.1:0' },
    connect: { type: 'string' },
    framing: { type: 'string', default: 'plain' },
    size: { type: 'string', default: '64' },
    connections: { type: 'string', default: '64' },
    duration: { type: 'string', default: '3000' },
    warmup: { type: 'string', default: '500' },
  },
});
const framing = values.framing as Framing;
if (framing !== 'plain' && framing !== 'framed')
  throw new Error('--framing must be plain or framed');
if (positionals[0] === 'server') serve(values.listen, framing);
else if (positionals[0] === 'client') {
  await load(
    values.connect!,
    framing,
    Number(values.size),
    Number(values.connections),
    Number(values.duration),
    Number(values.warmup),
  );
} else throw new Error('usage: echo-peer.js server|client …');
