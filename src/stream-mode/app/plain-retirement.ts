/**
 * Retiring a plain connection to a peer that turned out to speak ODB (`ODB_CONNECT=*`), without
 * breaking any request on it.
 *
 * Closing an idle keep-alive socket from outside races with the client writing its next request
 * on it: the request then fails (Node's http Agent does not retry it; undici retries only some).
 * So the client is asked to close the socket itself, at the one moment it knows to be safe: the
 * end of the response in flight. Node's `ClientRequest` decides at that moment from its
 * `shouldKeepAlive` field (lib/_http_client.js `responseOnEnd`): false → the socket is ended and
 * leaves the Agent's pool, and the Agent opens a new one, which speaks ODB, for the next request.
 * The request already sent is unchanged (no header is added), and the peer sees an ordinary close
 * after a complete response.
 *
 * Only sockets that carry a Node `ClientRequest` can be retired this way; undici's sockets and
 * raw protocols stay plain for as long as they are reused (the probe wait covers their first
 * connection).
 */
import { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Called for a write on a plain socket to a peer known to speak ODB: when the write belongs to a
 * Node HTTP request, the client closes the socket after its response. True if it will.
 */
export function retireAfterResponse(socket: Socket): boolean {
  const request = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
  if (!(request instanceof ClientRequest)) return false;
  request.shouldKeepAlive = false;
  return true;
}
