// The back end of docs/stream-mode.md, "Try it": a plain Node file server. It knows nothing of
// ODB; under `node --import odb/register` its large writes leave as descriptors.
//
//   node be.mjs <port> <directory>        GET /<name> streams <directory>/<name>
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const [port = '8080', directory = '.'] = process.argv.slice(2);

const server = createServer((req, res) => {
  // Anything but a readable regular file is a 404 (a directory, a bad %-escape), never a crash.
  let path;
  let size;
  try {
    path = join(directory, decodeURIComponent(req.url.slice(1)).replaceAll('..', ''));
    const stat = statSync(path);
    if (!stat.isFile()) throw new Error('not a file');
    size = stat.size;
  } catch {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
  // A read that fails after the head (the file went away) cuts the response short of its length.
  createReadStream(path)
    .on('error', (err) => res.destroy(err))
    .pipe(res);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`be: listening on 127.0.0.1:${port}`));
