/**
 * Which fetch protocol for the buffer store? Measures, in one run, the store's real HTTP/1.1
 * server with the pooled undici client against a minimal binary RPC (length-prefixed request
 * with the binary descriptor, 9-byte response head, then the bytes) serving the same payloads
 * with the same MAC check. Figures: CPU µs per fetch on each side (/proc), fetches/s, p50.
 *
 *   node dist/bench/store-protocol.js [--sizes 1024,65536,1048576] [--seconds 4] [--concurrency 8]
 *
 * The binary side exists only here, as the comparison point; see docs/architecture.md.
 */
import { fork } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { Keyring } from '../src/core/keys/keyring.js';
import { generateClusterKey, formatKeyFile, parseKeyFile } from '../src/core/keys/keyring.js';
import {
  decodeDescriptor,
  descriptorToText,
  descriptorFromText,
  verifyDescriptor,
  payloadIdHex,
} from '../src/protocol/descriptor.js';
import { StoreClient } from '../src/store/client.js';
import { pumpSource } from '../src/store/pump.js';
import { StoreServer } from '../src/store/server.js';
import { BufferStore } from '../src/store/store.js';
import { SyntheticPayload } from '../src/store/payloads/synthetic.js';
import { cpuMicros } from '../src/demo/proc-stat.js';

type Protocol = 'http' | 'binary';

/** Child: serve `sizes` over both protocols; report descriptors and ports to the parent. */
async function serve(keyText: string, sizes: number[]): Promise<void> {
  const keyring = parseKeyFile(keyText);
  const store = new BufferStore({ keyring, ttlMs: 3_600_000 });
  const http = new StoreServer({ store });
  const httpEndpoint = await http.listen('127.0.0.1', 0);
  const descriptors = sizes.map((size) =>
    descriptorToText(store.register(new SyntheticPayload(7, 0, size), 0)!),
  );

  // Binary RPC: u32 length + binary descriptor → u8 status + u64 length + bytes.
  const binary = createServer({ noDelay: true }, (socket) => {
    let pending = Buffer.alloc(0);
    let busy = Promise.resolve();
    socket.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const body = pending.subarray(4, 4 + pending.readUInt32BE(0));
        pending = pending.subarray(4 + body.length);
        const descriptor = decodeDescriptor(Buffer.from(body));
        busy = busy.then(async () => {
          verifyDescriptor(descriptor, keyring, Date.now());
          const entry = store.beginRead(payloadIdHex(descriptor));
          const head = Buffer.alloc(9);
          head.writeBigUInt64BE(BigInt(descriptor.length), 1);
          socket.cork();
          socket.write(head);
          process.nextTick(() => socket.uncork());
          await pumpSource(
            entry.source,
            descriptor.offset,
            descriptor.offset + descriptor.length,
            socket,
          );
          store.endRead(entry);
        });
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => binary.listen(0, '127.0.0.1', resolve));
  const port = (binary.address() as { port: number }).port;
  process.send!({ httpEndpoint, binaryPort: port, descriptors });
}

/** One binary-protocol connection with one fetch in flight. */
class BinaryConnection {
  readonly #socket: Socket;
  #remaining = -1;
  #head = Buffer.alloc(0);
  #done: (() => void) | undefined;

  constructor(port: number) {
    this.#socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.#socket.on('data', (data: Buffer) => this.#onData(data));
  }

  fetch(request: Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.#done = resolve;
      this.#remaining = -1;
      this.#socket.write(request);
    });
  }

  #onData(data: Buffer): void {
    let at = 0;
    if (this.#remaining < 0) {
      this.#head = Buffer.concat([this.#head, data]);
      if (this.#head.length < 9) return;
      this.#remaining = Number(this.#head.readBigUInt64BE(1));
      at = 9 - (this.#head.length - data.length);
      this.#head = Buffer.alloc(0);
    }
    this.#remaining -= data.length - at;
    if (this.#remaining === 0) this.#done?.();
  }

  close(): void {
    this.#socket.destroy();
  }
}

const discard = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

async function measure(
  protocol: Protocol,
  server: { pid: number; info: ServeInfo },
  sizeIndex: number,
  seconds: number,
  concurrency: number,
  keyring: Keyring,
) {
  const text = server.info.descriptors[sizeIndex]!;
  const descriptor = descriptorFromText(text);
  verifyDescriptor(descriptor, keyring, Date.now());
  let fetches = 0;
  const latencies: number[] = [];
  let stop = false;
  const client = new StoreClient({ connectionsPerStore: concurrency });
  const connections =
    protocol === 'binary'
      ? Array.from({ length: concurrency }, () => new BinaryConnection(server.info.binaryPort))
      : [];
  const request = Buffer.concat([Buffer.alloc(4), descriptor.bytes]);
  request.writeUInt32BE(descriptor.bytes.length, 0);
  const loop = async (i: number): Promise<void> => {
    while (!stop) {
      const t = process.hrtime.bigint();
      if (protocol === 'http') await client.fetch(descriptor, { start: discard });
      else await connections[i]!.fetch(request);
      latencies.push(Number(process.hrtime.bigint() - t) / 1000);
      fetches++;
    }
  };
  const warm = Array.from({ length: concurrency }, (_, i) => loop(i));
  await new Promise((r) => setTimeout(r, 500));
  fetches = 0;
  latencies.length = 0;
  const cpu0 = [cpuMicros(server.pid), cpuMicros(process.pid)];
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = [cpuMicros(server.pid), cpuMicros(process.pid)];
  const n = fetches;
  stop = true;
  await Promise.all(warm);
  await client.close();
  for (const c of connections) c.close();
  latencies.sort((a, b) => a - b);
  return {
    protocol,
    size: descriptor.length,
    fetchesPerSecond: n / elapsed,
    serverCpuPerFetch: (cpu1[0]! - cpu0[0]!) / n,
    clientCpuPerFetch: (cpu1[1]! - cpu0[1]!) / n,
    p50: latencies[Math.floor(latencies.length / 2)] ?? 0,
  };
}

interface ServeInfo {
  httpEndpoint: string;
  binaryPort: number;
  descriptors: string[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1024,65536,1048576' },
      seconds: { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '8' },
      serve: { type: 'string' },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  if (values.serve) return serve(Buffer.from(values.serve, 'base64url').toString(), sizes);
  const keyText = formatKeyFile([generateClusterKey()]);
  const keyring = parseKeyFile(keyText);
  const child = fork(new URL(import.meta.url), [
    '--serve',
    Buffer.from(keyText).toString('base64url'),
    '--sizes',
    values.sizes,
  ]);
  const info = await new Promise<ServeInfo>((resolve) =>
    child.once('message', (m) => resolve(m as ServeInfo)),
  );
  const rows = [];
  for (let i = 0; i < sizes.length; i++) {
    for (const protocol of ['http', 'binary'] as const) {
      rows.push(
        await measure(
          protocol,
          { pid: child.pid!, info },
          i,
          Number(values.seconds),
          Number(values.concurrency),
          keyring,
        ),
      );
    }
  }
  child.kill();
  console.log('protocol  size      fetches/s  server µs/fetch  client µs/fetch  p50 µs');
  for (const r of rows) {
    console.log(
      `${r.protocol.padEnd(8)}  ${String(r.size).padEnd(8)}  ${r.fetchesPerSecond.toFixed(0).padStart(9)}  ${r.serverCpuPerFetch.toFixed(1).padStart(15)}  ${r.clientCpuPerFetch.toFixed(1).padStart(15)}  ${r.p50.toFixed(0).padStart(6)}`,
    );
  }
}

await main();
