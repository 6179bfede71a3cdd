/**
 * The echo scenario: plain sockets vs ODB framing, server CPU from the kernel's accounting.
 * `framed` frames inside the benchmark program (the header-mode codec); `stream` runs the plain
 * program under `--import odb/register` on both ends, so stream mode's interposition frames it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../dev/harness/free-port.js';
import { packageRoot } from '../dev/harness/node-program.js';
import { cpuMicros } from '../src/demo/proc-stat.js';
import type { Placement } from '../src/demo/placement.js';
import type { Environment } from './environment.js';

const peer = fileURLToPath(new URL('./echo-peer.js', import.meta.url));

export type EchoFraming = 'plain' | 'framed' | 'stream';

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
  odbEnv?: Record<string, string>,
): { child: ChildProcess; lines: AsyncIterable<string> } {
  const node = odbEnv ? [process.execPath, '--import', 'odb/register'] : [process.execPath];
  const argv = [...where.prefix, ...node, peer, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: packageRoot,
    env: { ...process.env, ...odbEnv },
  });
  return { child, lines: createInterface({ input: child.stdout! }) };
}

/**
 * Runs one echo measurement: a server on `env.server`, a client on `env.client`. `keyFile` is
 * the cluster key of the `stream` framing.
 */
export async function runEcho(
  env: Environment,
  framing: EchoFraming,
  size: number,
  connections: number,
  durationMs: number,
  warmupMs: number,
  keyFile?: string,
): Promise<EchoRun> {
  // Stream mode needs the port up front: it is the configuration naming the ODB peer.
  const port = framing === 'stream' ? await freePort() : 0;
  const odb = (role: Record<string, string>): Record<string, string> | undefined =>
    framing === 'stream' ? { ODB_KEY_FILE: keyFile ?? '', ...role } : undefined;
  const codec = framing === 'framed' ? 'framed' : 'plain';
  const server = start(
    env.server,
    ['server', '--listen', `${env.server.host}:${port}`, '--framing', codec],
    odb({ ODB_LISTEN: String(port) }),
  );
  try {
    let address = '';
    let serverPid = 0;
    for await (const line of server.lines) {
      const ready = JSON.parse(line) as { ready: string; pid: number };
      address = ready.ready;
      serverPid = ready.pid;
      break;
    }
    const client = start(
      env.client,
      [
        'client',
        '--connect',
        address,
        '--framing',
        codec,
        '--size',
        String(size),
        '--connections',
        String(connections),
        '--duration',
        String(durationMs),
        '--warmup',
        String(warmupMs),
      ],
      odb({ ODB_CONNECT: address }),
    );
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
