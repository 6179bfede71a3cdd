import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { promisify } from 'node:util';
import type { Placement } from '../../src/demo/placement.js';

const run = promisify(execFile);

/**
 * A port that was free a moment ago on `host` (for programs that cannot report a bound port).
 *
 * Picked below the kernel's ephemeral range and never twice in one process: a port from
 * `listen(0)` is freed again before the program binds it, and in that gap the kernel may hand
 * the same number to the next `listen(0)` or to an outgoing connection, so the program's
 * `listen` fails with EADDRINUSE (seen in CI).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = nextCandidate();
    if (await canListen(port, host)) return port;
  }
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const handedOut = new Set<number>();
const candidateRange = portsBelowEphemeral();

function nextCandidate(): number {
  const [low, high] = candidateRange;
  if (handedOut.size >= high - low) handedOut.clear();
  for (;;) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (!handedOut.has(port)) return (handedOut.add(port), port);
  }
}

/** 12 000 ports just below the ephemeral range (Linux default 32768–60999; 20768–32767). */
function portsBelowEphemeral(): [number, number] {
  let low = 32_768;
  try {
    const range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    low = Number(range.trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: keep the default range's start
  }
  const start = Math.max(1_024, low - 12_000);
  return [start, Math.max(start + 1, low)];
}

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
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
