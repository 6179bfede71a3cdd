/** The metrics of a relaying tier (fe, is), read from its relay and socket counters. */
import type { HttpRelay } from './http-relay.js';
import type { TierMetrics } from './metrics.js';
import type { SocketByteCounter } from './socket-counter.js';

/** Metrics every relaying tier (fe, is) exposes. */
export function mirrorRelayMetrics(
  metrics: TierMetrics,
  relay: HttpRelay,
  clientSockets: SocketByteCounter,
  upstreamSockets: SocketByteCounter,
  storeSockets?: SocketByteCounter,
  moreClientAborts: () => number = () => 0,
): void {
  metrics.mirror({
    name: 'odb_requests_total',
    help: 'HTTP requests received',
    type: 'counter',
    read: () => [[{}, relay.stats.requests]],
  });
  metrics.mirror({
    name: 'odb_socket_bytes_total',
    help: 'Bytes received and sent on sockets, by peer (headers and framing included)',
    type: 'counter',
    labelNames: ['peer', 'direction'],
    read: () => {
      const samples: [Record<string, string>, number][] = [
        [{ peer: 'client', direction: 'received' }, clientSockets.bytesRead],
        [{ peer: 'client', direction: 'sent' }, clientSockets.bytesWritten],
        [{ peer: 'upstream', direction: 'received' }, upstreamSockets.bytesRead],
        [{ peer: 'upstream', direction: 'sent' }, upstreamSockets.bytesWritten],
      ];
      if (storeSockets) {
        samples.push([{ peer: 'store', direction: 'received' }, storeSockets.bytesRead]);
        samples.push([{ peer: 'store', direction: 'sent' }, storeSockets.bytesWritten]);
      }
      return samples;
    },
  });
  metrics.mirror({
    name: 'odb_relayed_body_bytes_total',
    help: 'Upstream response body bytes relayed to clients',
    type: 'counter',
    read: () => [[{}, relay.stats.relayedBodyBytes]],
  });
  metrics.mirror({
    name: 'odb_upstream_failures_total',
    help: 'Upstream requests that failed (502/504 or cut response)',
    type: 'counter',
    read: () => [[{}, relay.stats.upstreamFailures]],
  });
  metrics.mirror({
    name: 'odb_upstream_queue_rejections_total',
    help: 'Requests answered 503 while waiting for an upstream connection: queue full, or waited too long',
    type: 'counter',
    labelNames: ['reason'],
    read: () => [
      [{ reason: 'full' }, relay.stats.upstreamQueueFull],
      [{ reason: 'timeout' }, relay.stats.upstreamQueueTimeouts],
    ],
  });
  metrics.mirror({
    name: 'odb_client_aborts_total',
    help: 'Responses abandoned because the client went away',
    type: 'counter',
    read: () => [[{}, relay.stats.clientAborts + moreClientAborts()]],
  });
}
