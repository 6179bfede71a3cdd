/**
 * A hand-written Node proxy (plain `node:http`, no framework) made an ODB front end: offer the
 * shortcut upstream, and when the answer carries a descriptor, deliver the bytes from the store.
 *
 *   node dist/examples/frontend.js <listen-port> <upstream host:port> <key-file> <store host:port>
 *
 * The store endpoint is the back end's buffer store: descriptors naming any other are refused.
 */
import { createServer, request } from 'node:http';
import { OdbGateway, answerBadGateway, loadKeyring } from '../src/index.js';

const [
  listenPort = '8000',
  upstream = '127.0.0.1:8080',
  keyFile = 'cluster.key',
  store = '127.0.0.1:8081',
] = process.argv.slice(2);
const [upstreamHost, upstreamPort] = upstream.split(':');
const gateway = new OdbGateway({ keyring: loadKeyring(keyFile), allowedStores: [store] });

createServer((req, res) => {
  const headers = gateway.offer({ ...req.headers }); // strips client odb-* headers, adds the offer
  const proxied = request(
    { host: upstreamHost, port: Number(upstreamPort), method: req.method, path: req.url, headers },
    (upstreamRes) => {
      let shortcut;
      try {
        shortcut = gateway.inspect(
          req.method,
          upstreamRes.statusCode!,
          upstreamRes.headers,
          upstreamRes.statusMessage,
        );
      } catch (err) {
        console.error('descriptor refused:', (err as Error).message);
        upstreamRes.resume();
        answerBadGateway(res);
        return;
      }
      if (!shortcut) {
        res.writeHead(upstreamRes.statusCode!, upstreamRes.headers);
        upstreamRes.pipe(res);
        return;
      }
      upstreamRes.resume(); // the descriptor response has an empty body
      void gateway.deliver(shortcut, res).then((failure) => {
        if (failure) console.error('delivery failed:', failure.error.code);
      });
    },
  );
  proxied.on('error', () => answerBadGateway(res));
  req.pipe(proxied);
}).listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`front end on 127.0.0.1:${listenPort} → ${upstream}`);
});
