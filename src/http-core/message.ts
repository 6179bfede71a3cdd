/** Facts about HTTP/1.1 messages that several tiers need. */
import type { IncomingMessage } from 'node:http';

/** True when the request carries a body (RFC 9112 §6.3: a non-zero Content-Length, or chunked). */
export function requestHasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Emitted on a ServerResponse whose connection was handed to the next request before the
 * response itself ended (a detached descriptor response, see response-detacher.ts): for the
 * listener guard, the connection is free.
 */
export const connectionReleased = Symbol('odb.connectionReleased');
