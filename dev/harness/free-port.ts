import { execFile } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { promisify } from 'node:util';
import type { Placement } from '../../src/demo/placement.js';

const run = promisify(execFile);

/** A port that was free a moment ago on `host` (for programs that cannot report a bound port). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on host:port. */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host);
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Resolves once something listens on `port` where `placement` runs: by connecting on loopback,
 * or by asking `ss` inside the placement's namespace (a connection from here could not reach it).
 */
export async function waitForListen(
  placement: Placement,
  port: number,
  timeoutMs = 10_000,
): Promise<void> {
  if (placement.prefix.length === 0) return waitForPort(placement.host, port, timeoutMs);
  const deadline = Date.now() + timeoutMs;
  const [command, ...args] = [...placement.prefix, 'ss', '-ltnH', `sport = :${port}`];
  for (;;) {
    const { stdout } = await run(command!, args);
    if (stdout.trim() !== '') return;
    if (Date.now() > deadline)
      throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The port a third-party program should listen on under `placement`. */
export async function portFor(placement: Placement): Promise<number> {
  return placement.fixedPort ?? freePort(placement.host);
}
