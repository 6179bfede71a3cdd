/**
 * A stock HAProxy as an intermediate tier: HTTP mode with its defaults (keep-alive on both sides);
 * only the bind and server lines, timeouts and a stats socket (for byte counters) are ours, and
 * optionally kernel splicing of bodies.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { portFor } from './free-port.js';
import { runStockProcess } from './stock-process.js';
import { loopback, type Placement } from '../../src/demo/placement.js';
import type { TierHandle } from '../../src/demo/tier-handle.js';

/** Options of {@link startHaproxy}. */
export interface HaproxyOptions {
  readonly upstreams: readonly string[];
  readonly placement?: Placement;
  readonly name?: string;
  /**
   * Kernel splicing of bodies between its sockets (needs a build with LINUX_SPLICE): `forced`
   * (`option splice-request` and `option splice-response`: every body it can splice), `auto`
   * (`option splice-auto`: HAProxy's heuristics decide; on loopback they never chose to splice
   * in our runs, strace showed recvfrom/sendto only). Default: none.
   */
  readonly splice?: 'forced' | 'auto';
}

/** The `defaults` lines that switch kernel splicing on. */
function spliceLines(splice: HaproxyOptions['splice']): string {
  if (splice === 'forced') return '    option splice-request\n    option splice-response\n';
  if (splice === 'auto') return '    option splice-auto\n';
  return '';
}

/** Bytes HAProxy counted: from and to clients (frontend), from and to servers (backend). */
export interface HaproxyBytes {
  readonly received: number;
  readonly sent: number;
}

export interface HaproxyTier extends TierHandle {
  /** Bytes received and sent on all its connections, from its stats socket. */
  bytes(): Promise<HaproxyBytes>;
}

/** Starts HAProxy in the foreground with a generated configuration. */
export async function startHaproxy(options: HaproxyOptions): Promise<HaproxyTier> {
  const placement = options.placement ?? loopback;
  const port = await portFor(placement);
  const dir = mkdtempSync(join(tmpdir(), 'odb-haproxy-'));
  chmodSync(dir, 0o755);
  const socketPath = join(dir, 'stats.sock');
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(
    conf,
    // maxconn 8192 makes HAProxy want 20 508 descriptors and refuse to start under a hard
    // limit of 20 000 (as on the machines here); 4096 needs about 10 300.
    `global
    maxconn 4096
    stats socket ${socketPath} mode 600 level admin
defaults
    mode http
${spliceLines(options.splice)}    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend odb_frontend
    bind ${placement.host}:${port}
    default_backend odb_backend
backend odb_backend
${options.upstreams.map((u, i) => `    server s${i} ${u}`).join('\n')}
`,
  );
  const tier = await runStockProcess(
    options.name ?? 'haproxy',
    ['haproxy', '-db', '-f', conf],
    placement,
    port,
    dir,
  );
  return { ...tier, bytes: () => statsBytes(socketPath) };
}

/** Reads `show stat` from the stats socket (a Unix socket: reachable from any namespace). */
function statsBytes(socketPath: string): Promise<HaproxyBytes> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', reject);
    socket.on('end', () => {
      const [header = '', ...rows] = text.trim().split('\n');
      const columns = header.replace(/^# /, '').split(',');
      const bin = columns.indexOf('bin');
      const bout = columns.indexOf('bout');
      let received = 0;
      let sent = 0;
      for (const row of rows) {
        const cells = row.split(',');
        // Counters are from the client's point of view: a frontend receives requests (bin) and
        // sends responses (bout); a backend sends requests (bin) and receives responses (bout).
        if (cells[1] === 'FRONTEND') {
          received += Number(cells[bin]);
          sent += Number(cells[bout]);
        } else if (cells[1] === 'BACKEND') {
          sent += Number(cells[bin]);
          received += Number(cells[bout]);
        }
      }
      resolve({ received, sent });
    });
    socket.write('show stat\n');
  });
}
