/** The minimum send rate of a tier's client listener: watchdog, metric and log line. */
import type { Server } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import { silentLogger, type Logger } from '../core/log.js';
import {
  SendWatchdog,
  defaultSendMinBytesPerSecond,
  defaultSendTimeoutMs,
  type SendRateLimits,
} from '../core/net/send-rate.js';
import { ackedBytesUnavailable } from '../core/net/socket-progress.js';
import type { TierMetrics } from './metrics.js';

/** The defaults of `--send-timeout` and `--send-min-rate`. */
export const defaultSendRate: SendRateLimits = {
  timeoutMs: defaultSendTimeoutMs,
  minBytesPerSecond: defaultSendMinBytesPerSecond,
};

/**
 * Watches every connection `server` accepts (see SendWatchdog), counts cuts in
 * `odb_send_timeouts_total` and logs each. Close the watchdog with the server.
 */
export function attachSendWatchdog(
  server: Server,
  metrics: TierMetrics,
  limits: SendRateLimits = defaultSendRate,
  logger: Logger = silentLogger,
): SendWatchdog {
  const watchdog = new SendWatchdog({
    ...limits,
    onCut: (socket, cut) =>
      logger.warn(
        { code: 'ODB_ERR_SEND_TIMEOUT', peer: socket.remoteAddress, ...cut },
        'client connection cut: it took its response too slowly',
      ),
  });
  // A TLS listener's clients are its TLS sockets: the raw TCP socket under one never queues a byte
  // (the TLS layer writes beneath it), so it would never look slow.
  if (server instanceof TlsServer)
    server.on('secureConnection', (socket: TLSSocket) => watchdog.watch(socket));
  else server.on('connection', (socket) => watchdog.watch(socket));
  const unavailable = ackedBytesUnavailable();
  if (unavailable && limits.timeoutMs > 0) {
    logger.warn(
      { reason: unavailable },
      'send rate judged by kernel buffer drains (coarse): a slow but steady reader may be cut',
    );
  }
  metrics.mirror({
    name: 'odb_send_rate_native',
    help: "1 when the send rate is judged by what peers acknowledge (the addon's TCP_INFO), 0 when by kernel buffer drains",
    type: 'gauge',
    read: () => [[{}, unavailable ? 0 : 1]],
  });
  metrics.mirror({
    name: 'odb_send_timeouts_total',
    help: 'Client connections cut because they took their response slower than --send-min-rate',
    type: 'counter',
    read: () => [[{}, watchdog.stats.cut]],
  });
  return watchdog;
}
