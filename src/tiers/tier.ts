/** What every tier process shares: its listener, limits, send watchdog, metrics and shutdown. */
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { ListenerGuard, type ListenerLimits } from '../http-core/listener-limits.js';
import type { Logger } from '../core/log.js';
import type { HostPort } from '../core/net/address.js';
import { closeServer, listenServer } from '../core/net/listen.js';
import type { SendRateLimits } from '../core/net/send-rate.js';
import type { TlsCredentials } from '../core/net/tls-credentials.js';
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
  /** Serve the client listener over TLS (HTTPS) with this certificate, reloaded as it changes. */
  readonly tls?: TlsCredentials;
  readonly logger?: Logger;
}

/** Starts the client-facing HTTP listener and the metrics listener of a tier. */
export async function runTier(parts: TierParts): Promise<RunningTier> {
  const guard = new ListenerGuard(parts.limits);
  parts.metrics.countLimits('client', guard);
  const server = parts.tls
    ? createTlsServer(parts.tls, guard, parts)
    : createServer(guard.serverOptions(), guard.wrap(parts.handler));
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

/** Why TLS handshakes failed, as metric labels. */
type HandshakeFailure = 'timeout' | 'failed';

/**
 * The client listener over TLS: node:https with the guard's options, ALPN `http/1.1` only, and a
 * handshake deadline of the header timeout (Node's header timer starts once the handshake is
 * done; its own handshake default is 120 s). A new certificate applies to new connections.
 */
function createTlsServer(tls: TlsCredentials, guard: ListenerGuard, parts: TierParts): Server {
  const { cert, key } = tls.pair;
  const server = createHttpsServer(
    {
      ...guard.serverOptions(),
      cert,
      key,
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: guard.limits.headerTimeoutMs,
    },
    guard.wrap(parts.handler),
  );
  tls.onChange((pair) => server.setSecureContext({ cert: pair.cert, key: pair.key }));
  const failures: Record<HandshakeFailure, number> = { timeout: 0, failed: 0 };
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const reason: HandshakeFailure =
      err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'timeout' : 'failed';
    failures[reason]++;
    // Anyone on the internet can fail a handshake: worth a count, not a line at the default level.
    parts.logger?.debug(
      { reason, err: err.message, peer: socket.remoteAddress },
      'TLS handshake failed',
    );
    socket.destroy();
  });
  parts.metrics.mirror({
    name: 'odb_tls_handshake_failures_total',
    help: 'Client connections closed before their TLS handshake completed: timeout (--header-timeout) or failed (not TLS, no common protocol or cipher, a client refusing the certificate)',
    type: 'counter',
    labelNames: ['reason'],
    read: () => [
      [{ reason: 'timeout' }, failures.timeout],
      [{ reason: 'failed' }, failures.failed],
    ],
  });
  parts.metrics.mirror({
    name: 'odb_tls_reloads_total',
    help: 'TLS certificate reloads (SIGHUP or a changed file), by result (a failed one keeps the certificate in use)',
    type: 'counter',
    labelNames: ['result'],
    read: () => [
      [{ result: 'ok' }, tls.stats.ok],
      [{ result: 'failed' }, tls.stats.failed],
    ],
  });
  parts.metrics.mirror({
    name: 'odb_tls_certificate_not_after_seconds',
    help: 'Expiry (Unix time) of the TLS certificate new connections get',
    type: 'gauge',
    read: () => [[{}, Math.floor(tls.pair.certificate.notAfterMs / 1000)]],
  });
  return server;
}
