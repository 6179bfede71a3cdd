/** Listening on an address and closing a server without cutting responses in flight. */
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { formatAddress, type HostPort } from './address.js';

/** Responses in flight per HTTP server, so that closing can end each connection after its own. */
const inFlight = new WeakMap<Server, Set<ServerResponse>>();
/** HTTP servers being closed: responses they start now close their connection when done. */
const closing = new WeakSet<Server>();

function isHttpServer(server: Server): server is HttpServer {
  return 'closeIdleConnections' in server;
}

function trackResponses(server: HttpServer): void {
  const responses = new Set<ServerResponse>();
  inFlight.set(server, responses);
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    responses.add(res);
    res.once('close', () => responses.delete(res));
    if (closing.has(server)) closeAfter(res);
  });
}

/**
 * Lets `res` finish, then closes its connection instead of keeping it alive for another request:
 * `Connection: close` when the head is not sent yet, else an orderly end once the body is out.
 */
function closeAfter(res: ServerResponse): void {
  if (!res.headersSent) {
    res.shouldKeepAlive = false;
    return;
  }
  const socket = res.socket;
  if (socket) res.once('finish', () => socket.end());
}

/** Listens on `address` (port 0: any free port); resolves to the bound `host:port`. */
export async function listenServer(server: Server, address: HostPort): Promise<string> {
  if (isHttpServer(server) && !inFlight.has(server)) trackResponses(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return formatAddress(server.address() as AddressInfo);
}

/**
 * Stops accepting, drops idle keep-alive connections at once, lets every response in flight
 * finish and then closes its connection (Node alone would keep it alive, even serve further
 * requests on it). Resolves once every connection is gone.
 */
export async function closeServer(server: HttpServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  closing.add(server);
  server.closeIdleConnections();
  for (const res of inFlight.get(server) ?? []) closeAfter(res);
  await closed;
}
