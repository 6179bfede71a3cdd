/**
 * Prometheus exposition for a tier, on its own listener. Components keep plain counters; they are
 * read only when scraped, so the data path pays nothing for metrics.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { ListenerGuard, type ListenerLimits } from '../http-core/listener-limits.js';
import { closeServer, listenServer } from '../core/net/listen.js';

const metricsListenerLimits: Partial<ListenerLimits> = {
  maxConnections: 64,
  maxHeaders: 50,
  // A scrape costs the tier's own event loop: a few per connection, one at a time.
  maxRequestsPerConnection: 100,
  maxPipelined: 4,
  headerTimeoutMs: 10_000,
};

type Labels = Record<string, string>;
/** Current values of one metric: one entry per label set. */
export type Samples = readonly (readonly [Labels, number])[];

/** One metric mirrored from component counters. */
export interface MirroredMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly labelNames?: readonly string[];
  readonly read: () => Samples;
}

/** The registry of one tier process. */
export class TierMetrics {
  readonly registry = new Registry();
  #server: Server | undefined;
  /** Listener guards by listener name (`client`, `store`, `metrics`), for `odb_limit_hits_total`. */
  readonly #guards = new Map<string, ListenerGuard>();

  /** `tier` becomes a default label on every metric. */
  constructor(tier: string, mode: string) {
    this.registry.setDefaultLabels({ tier, mode });
    collectDefaultMetrics({ register: this.registry });
    this.mirror({
      name: 'odb_limit_hits_total',
      help: 'Connections or requests refused or cut by a listener limit, by listener and limit',
      type: 'counter',
      labelNames: ['listener', 'limit'],
      read: () =>
        [...this.#guards].flatMap(([listener, guard]) =>
          Object.entries(guard.hits).map(([limit, n]) => [{ listener, limit }, n] as const),
        ),
    });
  }

  /** Counts the limit hits of a listener under `odb_limit_hits_total{listener}`. */
  countLimits(listener: string, guard: ListenerGuard): void {
    this.#guards.set(listener, guard);
  }

  /** Exposes a metric whose values `read` returns at scrape time. */
  mirror(metric: MirroredMetric): void {
    const { name, help, labelNames = [], read } = metric;
    if (metric.type === 'counter') {
      new Counter({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [labels, value] of read()) this.inc(labels, value);
        },
      });
    } else {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          for (const [labels, value] of read()) this.set(labels, value);
        },
      });
    }
  }

  /** Serves `GET /metrics` on `host:port`; resolves to the bound address. */
  async listen(host: string, port: number): Promise<string> {
    // Scrapers are few and keep one connection: a small listener, closed to everything else.
    const guard = new ListenerGuard(metricsListenerLimits);
    this.countLimits('metrics', guard);
    const server = createServer(
      guard.serverOptions(),
      guard.wrap((req, res) => {
        if (req.url !== '/metrics') {
          res.writeHead(404).end();
          return;
        }
        this.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (err: Error) => res.writeHead(500).end(err.message),
        );
      }),
    );
    guard.attach(server);
    this.#server = server;
    return listenServer(server, { host, port });
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (server) await closeServer(server);
  }
}

/** Samples of a record of counters keyed by one label (e.g. errors by code). */
export function samplesByLabel(label: string, record: Partial<Record<string, number>>): Samples {
  return Object.entries(record).map(([key, value]) => [{ [label]: key }, value ?? 0] as const);
}
