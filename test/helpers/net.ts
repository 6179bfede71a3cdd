import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';

/** Sends raw bytes on a new connection; resolves with everything received until the peer closes or `idleMs` passes. */
export function rawExchange(
  port: number,
  bytes: Buffer | string,
  idleMs = 500,
): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    let timer: NodeJS.Timeout;
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(parts), closed });
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), idleMs);
    };
    socket.on('data', (d: Buffer) => {
      parts.push(d);
      arm();
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', reject);
    socket.write(bytes);
    arm();
  });
}

/** A writable that hashes what it receives. */
export class HashSink extends Writable {
  readonly #hash = createHash('sha256');
  bytes = 0;
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.bytes += chunk.length;
    this.#hash.update(chunk);
    cb();
  }
  digest(): string {
    return this.#hash.digest('hex');
  }
}

/** Hex SHA-256. */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A TCP server for scripted misbehaviour; tracks its sockets so `close` destroys them. */
export async function scriptedServer(
  onSocket: (socket: Socket) => void,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
