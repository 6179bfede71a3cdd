/**
 * wrk, the closed-loop HTTP load generator: each of `connections` connections sends its next
 * request as soon as the previous response ended (keep-alive, HTTP/1.1). A Lua `done` hook prints
 * one JSON line with wrk's own totals and latency percentiles, which {@link parseWrkOutput} reads.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** How to run wrk. */
export interface WrkSettings {
  readonly threads: number;
  readonly connections: number;
  /** Whole seconds (wrk takes no finer unit). */
  readonly durationS: number;
  /** A response slower than this counts as a timeout error. Whole seconds. */
  readonly timeoutS: number;
}

/** What one wrk run reports. */
export interface WrkResult {
  /** Responses completed (any status). */
  readonly requests: number;
  readonly durationUs: number;
  readonly requestsPerSecond: number;
  /** Bytes read: heads and bodies. */
  readonly bytes: number;
  /** Socket errors, by kind. */
  readonly errors: {
    readonly connect: number;
    readonly read: number;
    readonly write: number;
    readonly timeout: number;
  };
  /** Responses with a status ≥ 400 (wrk's "Non-2xx or 3xx responses"). */
  readonly statusErrors: number;
  /** Latency of completed requests, in µs (wrk's own histogram, 1 µs resolution). */
  readonly latencyUs: {
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
  };
}

/** The marker of the JSON line the `done` hook prints. */
const marker = 'odb-wrk-result ';

/** The Lua script: a JSON line at the end of the run (wrk's latency percentiles are in µs). */
export const wrkScript = `-- Written by bench/wrk.ts: prints wrk's totals as one JSON line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${marker}{"requests":%d,"durationUs":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
`;

/** Writes the script into `dir`; returns its path. */
export function writeWrkScript(dir: string): string {
  const path = join(dir, 'wrk-done.lua');
  writeFileSync(path, wrkScript);
  return path;
}

/** wrk's arguments for one run. */
export function wrkArgs(url: string, script: string, s: WrkSettings): string[] {
  return [
    '-t',
    String(s.threads),
    '-c',
    String(s.connections),
    '-d',
    `${s.durationS}s`,
    '--timeout',
    `${s.timeoutS}s`,
    '-s',
    script,
    url,
  ];
}

/** Reads the `done` hook's line from wrk's standard output. */
export function parseWrkOutput(stdout: string): WrkResult {
  const line = stdout.split('\n').find((l) => l.startsWith(marker));
  if (!line) throw new Error(`wrk printed no result line (is the Lua script loaded?):\n${stdout}`);
  const raw = JSON.parse(line.slice(marker.length)) as Record<string, number>;
  const field = (name: string): number => {
    const value = raw[name];
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw new Error(`wrk result line lacks ${name}: ${line}`);
    return value;
  };
  const durationUs = field('durationUs');
  return {
    requests: field('requests'),
    durationUs,
    requestsPerSecond: durationUs > 0 ? (field('requests') * 1e6) / durationUs : 0,
    bytes: field('bytes'),
    errors: {
      connect: field('connect'),
      read: field('read'),
      write: field('write'),
      timeout: field('timeout'),
    },
    statusErrors: field('status'),
    latencyUs: {
      mean: field('mean'),
      p50: field('p50'),
      p90: field('p90'),
      p99: field('p99'),
      p999: field('p999'),
      max: field('max'),
    },
  };
}

/** Socket errors of a run, all kinds. */
export function socketErrors(r: WrkResult): number {
  return r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout;
}

/**
 * Runs wrk once (under `prefix`, e.g. `ip netns exec …`) and resolves with its result; `onStart`
 * runs just before wrk is spawned. Rejects when wrk fails or prints no result.
 */
export function runWrk(
  url: string,
  script: string,
  settings: WrkSettings,
  prefix: readonly string[] = [],
): Promise<WrkResult> {
  const argv = [...prefix, 'wrk', ...wrkArgs(url, script, settings)];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`wrk exited with ${code ?? signal}: ${stderr}${stdout}`));
        return;
      }
      try {
        resolve(parseWrkOutput(stdout));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}
