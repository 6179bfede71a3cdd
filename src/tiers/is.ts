/**
 * `odb is`: an intermediate tier. A plain HTTP/1.1 reverse proxy and round-robin load balancer
 * with keep-alive pools; it knows nothing of ODB, which is the point: descriptor responses cross
 * it like any small response.
 */
import { createServer } from 'node:http';
import type { HostPort } from '../net/address.js';
import { closeServer, listenServer } from '../net/listen.js';
import type { Logger } from '../log.js';
import { HttpRelay } from './http-relay.js';
import { TierMetrics } from './metrics.js';
import { mirrorRelayMetrics } from './relay-metrics.js';
import { SocketByteCounter } from './socket-counter.js';
import type { RunningTier } from './tier.js';

/** Configuration of an intermediate tier. */
export interface IntermediateConfig {
  readonly listen: HostPort;
  readonly upstreams: readonly string[];
  readonly connectionsPerUpstream: number;
  readonly metricsListen?: HostPort;
  readonly logger: Logger;
}

/** Starts the intermediate tier. */
export async function startIntermediate(config: IntermediateConfig): Promise<RunningTier> {
  const clientSockets = new SocketByteCounter();
  const upstreamSockets = new SocketByteCounter();
  const relay = new HttpRelay({
    upstreams: config.upstreams,
    connectionsPerUpstream: config.connectionsPerUpstream,
    onUpstreamSocket: (s) => upstreamSockets.track(s),
    logger: config.logger,
  });
  const server = createServer({ keepAliveTimeout: 65_000 }, relay.handle);
  server.on('connection', (s) => clientSockets.track(s));
  const addresses: Record<string, string> = { http: await listenServer(server, config.listen) };
  const metrics = new TierMetrics('is', 'vanilla');
  mirrorRelayMetrics(metrics, relay, clientSockets, upstreamSockets);
  if (config.metricsListen)
    addresses.metrics = await metrics.listen(config.metricsListen.host, config.metricsListen.port);
  return {
    addresses,
    metrics,
    async close() {
      await Promise.all([closeServer(server), metrics.close()]);
      await relay.close();
    },
  };
}
