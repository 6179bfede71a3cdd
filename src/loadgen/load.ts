/**
 * The load generator behind `odb load` (and so behind the demo and the benchmarks): persistent
 * connections, latency in an HdrHistogram (µs), and every response checked for status and length,
 * with SHA-256 of the body for a configurable share of them.
 */
import { createHash, type Hash } from 'node:crypto';
import * as hdr from 'hdr-histogram-js';
import { Pool, type Dispatcher } from 'undici';

/** What to load and how to check it. */
export interface LoadSpec {
  readonly url: string;
  /**
   * Persistent connections, each with one request in flight. Closed loop: each connection sends
   * its next request when the previous one completes. Open loop: the cap on requests in flight.
   */
  readonly connections: number;
  /**
   * Open loop at this many requests per second: request i is due at start + i/rate, and its
   * latency is counted from when it was due (corrected for coordinated omission).
   */
  readonly ratePerSecond?: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Expected status (default 200), body length and SHA-256 (hex). */
  readonly expect?: {
    readonly status?: number;
    readonly length?: number;
    readonly sha256?: string;
  };
  /** Hash every response, one in `sampleEvery`, or none. Default: every one. */
  readonly hashEvery?: number;
}

/** Latency percentiles in µs. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** Figures of the measured window (warm-up excluded). */
export interface LoadResult {
  readonly url: string;
  readonly connections: number;
  /** Asked rate (open loop), or undefined (closed loop). */
  readonly targetRate: number | undefined;
  /**
   * Open loop: requests that were due but could not be sent because every connection was busy
   * and the backlog was full. Non-zero means the asked rate was not held.
   */
  readonly missed: number;
  readonly durationMs: number;
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly bodyBytes: number;
  readonly errors: number;
  /** Failures by kind (status, length, sha256, transport message). */
  readonly errorKinds: Readonly<Record<string, number>>;
  readonly hashed: number;
  readonly latencyUs: LatencySummary;
  /** The histogram, HdrHistogram base64 "compressed" encoding, for merging and charts. */
  readonly histogram: string;
}

class CheckedResponse implements Dispatcher.DispatchHandler {
  status = 0;
  bytes = 0;
  readonly #hash: Hash | undefined;
  readonly #done: (err: Error | undefined) => void;

  constructor(hash: boolean, done: (err: Error | undefined) => void) {
    this.#hash = hash ? createHash('sha256') : undefined;
    this.#done = done;
  }

  digest(): string | undefined {
    return this.#hash?.digest('hex');
  }

  onRequestStart(): void {}

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    this.#hash?.update(chunk);
  }

  onResponseEnd(): void {
    this.#done(undefined);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.#done(err);
  }
}

/** Runs the load; `onMeasuring` is called when the warm-up ends. */
export async function runLoad(spec: LoadSpec, onMeasuring?: () => void): Promise<LoadResult> {
  const target = new URL(spec.url);
  const pool = new Pool(target.origin, { connections: spec.connections, pipelining: 1 });
  const path = target.pathname + target.search;
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const errorKinds: Record<string, number> = {};
  const expect = spec.expect ?? {};
  const hashEvery = spec.hashEvery ?? 1;
  const counts = { requests: 0, bodyBytes: 0, errors: 0, hashed: 0, missed: 0 };
  let measuring = false;
  let stopped = false;
  let sequence = 0;
  let inFlight = 0;

  const fail = (kind: string): void => {
    if (!measuring) return;
    counts.errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };

  /** Sends one request; latency counts from `dueNs` (when it should have been sent). */
  const one = (dueNs: bigint): Promise<void> =>
    new Promise((resolve) => {
      const hash = expect.sha256 !== undefined && sequence++ % hashEvery === 0;
      const counted = measuring;
      inFlight++;
      const response: CheckedResponse = new CheckedResponse(hash, (err) => {
        inFlight--;
        const micros = Number((process.hrtime.bigint() - dueNs) / 1000n);
        if (err) fail(`transport: ${err.message}`);
        else if (response.status !== (expect.status ?? 200)) fail(`status ${response.status}`);
        else if (expect.length !== undefined && response.bytes !== expect.length) fail('length');
        else if (hash && response.digest() !== expect.sha256) fail('sha256');
        else if (counted && measuring) {
          counts.requests++;
          counts.bodyBytes += response.bytes;
          if (hash) counts.hashed++;
          histogram.recordValue(micros);
        }
        resolve();
      });
      pool.dispatch({ path, method: 'GET', headers: { host: target.host } }, response);
    });

  let running: Promise<unknown>;
  if (spec.ratePerSecond === undefined) {
    const worker = async (): Promise<void> => {
      while (!stopped) await one(process.hrtime.bigint());
    };
    running = Promise.all(Array.from({ length: spec.connections }, worker));
  } else {
    running = openLoop(
      spec.ratePerSecond,
      () => stopped,
      (due) => {
        // Beyond a bounded backlog the generator cannot hold the rate: count it, do not queue.
        if (inFlight >= spec.connections * 4) {
          if (measuring) counts.missed++;
          return undefined;
        }
        return one(due);
      },
    );
  }
  await sleep(spec.warmupMs);
  measuring = true;
  onMeasuring?.();
  const start = process.hrtime.bigint();
  await sleep(spec.durationMs);
  measuring = false;
  const durationMs = Number(process.hrtime.bigint() - start) / 1e6;
  stopped = true;
  await running;
  await pool.close();
  return {
    url: spec.url,
    connections: spec.connections,
    targetRate: spec.ratePerSecond,
    missed: counts.missed,
    durationMs,
    requests: counts.requests,
    requestsPerSecond: (counts.requests * 1000) / durationMs,
    bodyBytes: counts.bodyBytes,
    errors: counts.errors,
    errorKinds,
    hashed: counts.hashed,
    latencyUs: summarise(histogram),
    histogram: hdr.encodeIntoCompressedBase64(histogram),
  };
}

/**
 * Fires `send(due)` for every instant due = start + i/rate until `stopped()`, catching up in
 * bursts when timers fire late (timers have millisecond granularity); resolves once all sent
 * requests completed.
 */
async function openLoop(
  rate: number,
  stopped: () => boolean,
  send: (dueNs: bigint) => Promise<void> | undefined,
): Promise<void> {
  const intervalNs = BigInt(Math.round(1e9 / rate));
  const pending = new Set<Promise<void>>();
  let due = process.hrtime.bigint();
  while (!stopped()) {
    const now = process.hrtime.bigint();
    while (due <= now) {
      const request = send(due);
      if (request) {
        pending.add(request);
        void request.then(() => pending.delete(request));
      }
      due += intervalNs;
    }
    await sleep(Math.max(0, Number(due - process.hrtime.bigint()) / 1e6));
  }
  await Promise.all(pending);
}

function summarise(h: hdr.Histogram): LatencySummary {
  return {
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    mean: h.mean,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
