/** Facts about HTTP/1.1 messages that several tiers need. */
import type { IncomingMessage } from 'node:http';

/** True when the request carries a body (RFC 9112 §6.3: a non-zero Content-Length, or chunked). */
export function requestHasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
