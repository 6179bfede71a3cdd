import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { formatAddress, type HostPort } from './address.js';

/** Listens on `address` (port 0: any free port); resolves to the bound `host:port`. */
export async function listenServer(server: Server, address: HostPort): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return formatAddress(server.address() as AddressInfo);
}

/** Stops accepting, drops idle keep-alive connections and waits for the rest to finish. */
export async function closeServer(server: HttpServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  await closed;
}
