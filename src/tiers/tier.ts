/** What every tier process shares: its listener, limits, send watchdog, metrics and shutdown. */
import { createServer, type RequestListener } from 'node:http';
import { ListenerGuard, type ListenerLimits } from '../http-core/listener-limits.js';
import type { Logger } from '../core/log.js';
import type { HostPort } from '../core/net/address.js';
import { closeServer, listenServer } from '../core/net/listen.js';
import type { SendRateLimits } from '../core/net/send-rate.js';
import type { TierMetrics } from './metrics.js';
import { attachSendWatchdog } from './send-timeouts.js';
import type { SocketByteCounter } from './socket-counter.js';

/** Whether a tier takes part in ODB. */
export type TierMode = 'odb' | 'vanilla';

/** A started tier. */
export interface RunningTier {
  /** Bound addresses by listener name (`http`, `store`, `metrics`, …). */
  readonly addresses: Readonly<Record<string, string>>;
  readonly metrics: TierMetrics;
  /** Stops listening and lets in-flight work finish. */
  close(): Promise<void>;
}

/** What every tier has in common once its own parts are built. */
export interface TierParts {
  readonly handler: RequestListener;
  readonly listen: HostPort;
  /** Counts the bytes of client-facing connections. */
  readonly clientSockets: SocketByteCounter;
  readonly metrics: TierMetrics;
  readonly metricsListen?: HostPort;
  /** Addresses of listeners the tier started itself (e.g. its store). */
  readonly addresses?: Record<string, string>;
  /** Limits of the client-facing listener (defaults: `defaultListenerLimits`). */
  readonly limits?: Partial<ListenerLimits>;
  /** Closes the tier's own parts, after its listeners stopped. */
  readonly closeParts: () => Promise<unknown>;
  /** Minimum send rate of the client listener (`--send-timeout`, `--send-min-rate`). */
  readonly sendRate?: SendRateLimits;
  readonly logger?: Logger;
}

/** Starts the client-facing HTTP listener and the metrics listener of a tier. */
export async function runTier(parts: TierParts): Promise<RunningTier> {
  const guard = new ListenerGuard(parts.limits);
  parts.metrics.countLimits('client', guard);
  const server = createServer(guard.serverOptions(), guard.wrap(parts.handler));
  guard.attach(server);
  server.on('connection', (socket) => parts.clientSockets.track(socket));
  const sendWatchdog = attachSendWatchdog(server, parts.metrics, parts.sendRate, parts.logger);
  const addresses: Record<string, string> = { ...parts.addresses };
  addresses.http = await listenServer(server, parts.listen);
  if (parts.metricsListen)
    addresses.metrics = await parts.metrics.listen(
      parts.metricsListen.host,
      parts.metricsListen.port,
    );
  return {
    addresses,
    metrics: parts.metrics,
    async close() {
      await Promise.all([closeServer(server), parts.metrics.close()]);
      sendWatchdog.close();
      await parts.closeParts();
    },
  };
}
