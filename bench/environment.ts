/**
 * Where a benchmark runs, and how it counts bytes there. On the testbed each tier is a host with
 * its own interface: bytes come from the kernel's interface counters (frames, headers and ACKs
 * included). On loopback all tiers share `lo`: bytes come from each tier's own socket counters
 * (ours: `odb_socket_bytes_total`; nginx: its access log; HAProxy: its stats socket).
 */
import type { Chain, ChainRole } from '../dev/harness/chain.js';
import type { HaproxyTier } from '../dev/harness/haproxy.js';
import type { NginxTier } from '../dev/harness/nginx.js';
import { loopback, type Placement } from '../src/demo/placement.js';
import { metricValue, scrape } from '../src/demo/prometheus.js';
import type { OdbProcess } from '../src/demo/tier-process.js';
import {
  interfaceBytes,
  onHost,
  testbedDown,
  testbedUp,
  type TestbedHost,
} from '../dev/harness/testbed.js';

export type EnvironmentName = 'loopback' | 'testbed';

/** Bytes a tier received and sent so far. */
export interface ByteCount {
  readonly rx: number;
  readonly tx: number;
}

/** A place to run chains and load generators. */
export interface Environment {
  readonly name: EnvironmentName;
  /** Where the counters come from, for the report. */
  readonly byteSource: string;
  place(role: ChainRole): Placement;
  /** Where load generators and echo clients run. */
  readonly client: Placement;
  /** Where an echo server runs. */
  readonly server: Placement;
  /** Cumulative bytes of one tier of a running chain. */
  bytes(chain: Chain, tier: string): Promise<ByteCount>;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
}

/** Fixed port for third-party intermediates on testbed hosts (each host has its own ports). */
const testbedProxyPort = 8090;

export function testbedEnvironment(): Environment {
  return {
    name: 'testbed',
    byteSource: 'kernel interface counters of each host (frames with their headers, ACKs included)',
    place: (role) => onHost(role as TestbedHost, testbedProxyPort),
    client: onHost('client'),
    server: onHost('be'),
    async bytes(_chain, tier) {
      return interfaceBytes(tier as TestbedHost);
    },
    setUp: testbedUp,
    tearDown: testbedDown,
  };
}

export function loopbackEnvironment(): Environment {
  return {
    name: 'loopback',
    byteSource:
      "each tier's socket counters (ours: odb_socket_bytes_total; nginx: access log; HAProxy: stats)",
    place: () => loopback,
    client: loopback,
    server: loopback,
    bytes: tierReportedBytes,
    setUp: async () => {},
    tearDown: async () => {},
  };
}

async function tierReportedBytes(chain: Chain, tier: string): Promise<ByteCount> {
  const handle = chain.processes.find((p) => p.name === tier);
  if (!handle) throw new Error(`no tier ${tier}`);
  if ('accessLog' in handle) {
    let rx = 0;
    let tx = 0;
    for (const e of (handle as NginxTier).accessLog()) {
      rx += e.requestLength + e.upstreamBytesReceived;
      tx += e.bytesSent + e.upstreamBytesSent;
    }
    return { rx, tx };
  }
  if ('bytes' in handle) {
    const { received, sent } = await (handle as HaproxyTier).bytes();
    return { rx: received, tx: sent };
  }
  const odb = handle as OdbProcess;
  const samples = await scrape(odb.addresses.metrics!, chain.placements[tier]?.prefix);
  return {
    rx: metricValue(samples, 'odb_socket_bytes_total', { direction: 'received' }),
    tx: metricValue(samples, 'odb_socket_bytes_total', { direction: 'sent' }),
  };
}

/** The environment by name. */
export function environment(name: EnvironmentName): Environment {
  return name === 'testbed' ? testbedEnvironment() : loopbackEnvironment();
}
