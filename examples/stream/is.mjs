// The intermediate tier of docs/stream-mode.md, "Try it": a plain Node reverse proxy that pipes
// each upstream response to its client and never reads a body. Under `node --import odb/register`
// it forwards the descriptors it receives, and the bytes never reach it.
//
//   node is.mjs <port> <upstream-url>
import { Agent, createServer, request } from 'node:http';

const [port = '8090', upstream = 'http://127.0.0.1:8080'] = process.argv.slice(2);
const target = new URL(upstream);
const agent = new Agent({ keepAlive: true });
const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

function endToEnd(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name)));
}

const server = createServer((req, res) => {
  const out = request(
    {
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.headers),
      agent,
    },
    (up) => {
      res.writeHead(up.statusCode, endToEnd(up.headers));
      up.pipe(res);
    },
  );
  out.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
  res.on('close', () => {
    if (!res.writableFinished) out.destroy(); // the client went away
  });
  req.pipe(out);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`is: listening on 127.0.0.1:${port}`));
