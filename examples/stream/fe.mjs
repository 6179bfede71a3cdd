// The front end of docs/stream-mode.md, "Try it": the plain Node gateway clients talk to. It
// relays each request to the next tier and logs one line per response. Its client port is not an
// ODB port, so clients get ordinary HTTP; the bytes of a descriptor it receives are fetched from
// the back end's store as it writes them to the client.
//
//   node fe.mjs <port> <upstream-url>
import { Agent, createServer, request } from 'node:http';

const [port = '8000', upstream = 'http://127.0.0.1:8090'] = process.argv.slice(2);
const target = new URL(upstream);
const agent = new Agent({ keepAlive: true });
const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

function endToEnd(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name)));
}

const server = createServer((req, res) => {
  const started = Date.now();
  let length = '-';
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
      length = up.headers['content-length'] ?? '-';
      res.writeHead(up.statusCode, endToEnd(up.headers));
      up.pipe(res);
    },
  );
  out.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
  res.on('close', () => {
    const cut = !res.writableFinished;
    if (cut) out.destroy(); // the client went away
    const ms = Date.now() - started;
    console.log(
      `fe: ${req.method} ${req.url} ${res.statusCode} ${length} B ${ms} ms${cut ? ' cut' : ''}`,
    );
  });
  req.pipe(out);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`fe: listening on 127.0.0.1:${port}`));
