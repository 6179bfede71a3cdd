/** Reading figures back from a tier's Prometheus endpoint. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { OdbError } from '../core/errors.js';

const run = promisify(execFile);

/** One parsed sample line. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses Prometheus text exposition (sample lines only). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function metricValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

/**
 * Fetches and parses `http://<address>/metrics`, from inside the placement's namespace when it
 * has a prefix (the address is then that host's own loopback).
 */
export async function scrape(address: string, prefix: readonly string[] = []): Promise<Sample[]> {
  if (prefix.length > 0) {
    const [command, ...args] = [...prefix, 'curl', '-sf', `http://${address}/metrics`];
    const { stdout } = await run(command!, args);
    return parsePrometheus(stdout);
  }
  const response = await fetch(`http://${address}/metrics`);
  if (!response.ok) {
    throw new OdbError('ODB_ERR_DEMO_PROCESS', `metrics at ${address}: HTTP ${response.status}`);
  }
  return parsePrometheus(await response.text());
}
