/**
 * `odb is`: an intermediate tier. A plain HTTP/1.1 reverse proxy and round-robin load balancer
 * with keep-alive pools; it knows nothing of ODB, which is the point: descriptor responses cross
 * it like any small response.
 */
import type { HostPort } from '../core/net/address.js';
import type { Logger } from '../core/log.js';
import type { ListenerLimits } from '../http-core/listener-limits.js';
import { HttpRelay, type UpstreamQueueLimits } from './http-relay.js';
import type { SendRateLimits } from '../core/net/send-rate.js';
import { TierMetrics } from './metrics.js';
import { mirrorRelayMetrics } from './relay-metrics.js';
import { SocketByteCounter } from './socket-counter.js';
import { runTier, type RunningTier } from './tier.js';

/** Configuration of an intermediate tier. */
export interface IntermediateConfig {
  readonly listen: HostPort;
  readonly upstreams: readonly string[];
  readonly connectionsPerUpstream: number;
  /** Minimum send rate of the client listener. */
  readonly sendRate?: SendRateLimits;
  readonly metricsListen?: HostPort;
  /** Limits of the client-facing listener. */
  readonly limits?: Partial<ListenerLimits>;
  /** Waiting for a free upstream connection: most requests queued, and longest wait. */
  readonly upstreamQueue?: UpstreamQueueLimits;
  readonly logger: Logger;
}

/** Starts the intermediate tier. */
export async function startIntermediate(config: IntermediateConfig): Promise<RunningTier> {
  const clientSockets = new SocketByteCounter();
  const upstreamSockets = new SocketByteCounter();
  const relay = new HttpRelay({
    upstreams: config.upstreams,
    connectionsPerUpstream: config.connectionsPerUpstream,
    queue: config.upstreamQueue,
    onUpstreamSocket: (s) => upstreamSockets.track(s),
    logger: config.logger,
  });
  const metrics = new TierMetrics('is', 'vanilla');
  mirrorRelayMetrics(metrics, relay, clientSockets, upstreamSockets);
  return runTier({
    handler: relay.handle,
    listen: config.listen,
    clientSockets,
    metrics,
    metricsListen: config.metricsListen,
    limits: config.limits,
    sendRate: config.sendRate,
    logger: config.logger,
    closeParts: () => relay.close(),
  });
}
