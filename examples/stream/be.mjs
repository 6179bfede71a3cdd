// The back end of docs/stream-mode.md, "Try it": a plain Node file server. It knows nothing of
// ODB; under `node --import odb/register` its large writes leave as descriptors.
//
//   node be.mjs <port> <directory>        GET /<name> streams <directory>/<name>
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const [port = '8080', directory = '.'] = process.argv.slice(2);

const server = createServer((req, res) => {
  const path = join(directory, decodeURIComponent(req.url.slice(1)).replaceAll('..', ''));
  let size;
  try {
    size = statSync(path).size;
  } catch {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
  createReadStream(path).pipe(res);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`be: listening on 127.0.0.1:${port}`));
