/** The socket connector of every undici pool ODB opens (upstreams and stores). */
import type { Socket } from 'node:net';
import { buildConnector } from 'undici';

/**
 * An undici connector with a connect timeout that reports every new connection to `onSocket`
 * (tiers count bytes per connection group with it).
 */
export function observedConnector(
  timeoutMs: number,
  onSocket: ((socket: Socket) => void) | undefined,
): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs });
  if (!onSocket) return connect;
  return (options, callback) =>
    connect(options, (err, socket) => {
      if (err) return callback(err, null);
      onSocket(socket as Socket);
      callback(null, socket!);
    });
}
