/**
 * The multi-host testbed (scripts/testbed.sh) from Node: placement of tiers on hosts, and the
 * kernel's per-host interface counters, which are the ground truth for bytes on the testbed.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { Placement } from '../../src/demo/placement.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));

export const testbedHosts = ['client', 'fe', 'is1', 'is2', 'be'] as const;
export type TestbedHost = (typeof testbedHosts)[number];

const addresses: Record<TestbedHost, string> = {
  client: '10.77.0.10',
  fe: '10.77.0.11',
  is1: '10.77.0.12',
  is2: '10.77.0.13',
  be: '10.77.0.14',
};

/** The namespace of a host. */
export function namespaceOf(host: TestbedHost): string {
  return `odb-${host}`;
}

/** Placement of a process on a testbed host. */
export function onHost(host: TestbedHost, fixedPort?: number): Placement {
  return { prefix: ['ip', 'netns', 'exec', namespaceOf(host)], host: addresses[host], fixedPort };
}

/** Brings the testbed up (idempotent). */
export async function testbedUp(): Promise<void> {
  await run('bash', [script, 'up']);
}

/** Tears it down: every process in it is killed, every namespace and link removed. */
export async function testbedDown(): Promise<void> {
  await run('bash', [script, 'down']);
}

/** Delays (ms, each direction) and drops (fraction) frames on a host's link. */
export async function impair(host: TestbedHost, delayMs: number, loss: number): Promise<void> {
  await run('bash', [script, 'impair', host, '--delay', String(delayMs), '--loss', String(loss)]);
}

/** Removes a host's impairment. */
export async function clearImpairment(host: TestbedHost): Promise<void> {
  await run('bash', [script, 'clear', host]);
}

/** Bytes received and sent on a host's eth0, frame headers included (kernel counters). */
export interface InterfaceBytes {
  readonly rx: number;
  readonly tx: number;
}

/** Reads a host's eth0 counters. */
export async function interfaceBytes(host: TestbedHost): Promise<InterfaceBytes> {
  const { stdout } = await run('ip', [
    '-n',
    namespaceOf(host),
    '-s',
    '-j',
    'link',
    'show',
    'dev',
    'eth0',
  ]);
  const [link] = JSON.parse(stdout) as {
    stats64: { rx: { bytes: number }; tx: { bytes: number } };
  }[];
  return { rx: link!.stats64.rx.bytes, tx: link!.stats64.tx.bytes };
}
