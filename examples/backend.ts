/**
 * An existing Node back end, made ODB-aware with two lines: a store (and its server), and the
 * handler wrapped in `odb.handler(...)`. Files go through `odb.sendFile` (never copied to memory).
 *
 *   node dist/examples/backend.js <http-port> <store-port> <key-file> <directory>
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { BufferStore, OdbBackend, StoreServer, loadKeyring } from '../src/index.js';

const [httpPort = '8080', storePort = '8081', keyFile = 'cluster.key', directory = '.'] =
  process.argv.slice(2);

const store = new BufferStore({ keyring: loadKeyring(keyFile) });
await new StoreServer({ store }).listen('127.0.0.1', Number(storePort));
const odb = new OdbBackend({ store, thresholdBytes: 64 * 1024 });

// The application's own handler, unchanged: it knows nothing of ODB.
function app(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/report') {
    res.setHeader('content-type', 'text/csv');
    for (let row = 0; row < 20_000; row++) res.write(`${row},${row * row},${'x'.repeat(40)}\n`);
    res.end();
    return;
  }
  if (req.url?.startsWith('/files/')) {
    odb
      .sendFile(req, res, join(directory, req.url.slice('/files/'.length).replaceAll('..', '')))
      .catch(() => {
        if (!res.headersSent) res.writeHead(404).end();
      });
    return;
  }
  res.writeHead(404).end();
}

createServer(odb.handler(app)).listen(Number(httpPort), '127.0.0.1', () => {
  console.log(`back end on 127.0.0.1:${httpPort}, store on 127.0.0.1:${storePort}`);
});
