/** The echo scenario: plain sockets vs ODB framing, server CPU from the kernel's accounting. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cpuMicros } from '../src/harness/proc-stat.js';
import type { Placement } from '../src/harness/placement.js';
import type { Environment } from './environment.js';

const peer = fileURLToPath(new URL('./echo-peer.js', import.meta.url));

export type EchoFraming = 'plain' | 'framed';

/** One echo run. */
export interface EchoRun {
  readonly framing: EchoFraming;
  readonly size: number;
  readonly connections: number;
  readonly exchangesPerSecond: number;
  readonly latencyUs: { readonly p50: number; readonly p95: number; readonly p99: number };
  /** Server CPU per exchange (receive + echo), µs. */
  readonly serverCpuUsPerExchange: number;
}

function start(
  where: Placement,
  args: string[],
): { child: ChildProcess; lines: AsyncIterable<string> } {
  const argv = [...where.prefix, process.execPath, peer, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return { child, lines: createInterface({ input: child.stdout! }) };
}

/** Runs one echo measurement: a server on `env.server`, a client on `env.client`. */
export async function runEcho(
  env: Environment,
  framing: EchoFraming,
  size: number,
  connections: number,
  durationMs: number,
  warmupMs: number,
): Promise<EchoRun> {
  const server = start(env.server, [
    'server',
    '--listen',
    `${env.server.host}:0`,
    '--framing',
    framing,
  ]);
  try {
    let address = '';
    let serverPid = 0;
    for await (const line of server.lines) {
      const ready = JSON.parse(line) as { ready: string; pid: number };
      address = ready.ready;
      serverPid = ready.pid;
      break;
    }
    const client = start(env.client, [
      'client',
      '--connect',
      address,
      '--framing',
      framing,
      '--size',
      String(size),
      '--connections',
      String(connections),
      '--duration',
      String(durationMs),
      '--warmup',
      String(warmupMs),
    ]);
    let cpuBefore = 0;
    for await (const line of client.lines) {
      const event = JSON.parse(line) as Omit<EchoRun, 'serverCpuUsPerExchange'> & {
        event: string;
        exchanges: number;
      };
      if (event.event === 'measuring') cpuBefore = cpuMicros(serverPid);
      if (event.event === 'result') {
        const cpu = cpuMicros(serverPid) - cpuBefore;
        return {
          framing,
          size,
          connections,
          exchangesPerSecond: event.exchangesPerSecond,
          latencyUs: event.latencyUs,
          serverCpuUsPerExchange: cpu / Math.max(1, event.exchanges),
        };
      }
    }
    throw new Error('echo client ended without a result');
  } finally {
    server.child.kill('SIGTERM');
  }
}
