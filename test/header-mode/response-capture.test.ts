// OdbBackend.handler() around ordinary handlers: large bodies go as descriptors whatever the
// handler's style; small ones leave the server byte for byte as plain Node would send them.
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { after, before, test } from 'node:test';
import { OdbBackend } from '../../src/header-mode/backend.js';
import { generateClusterKey, Keyring } from '../../src/core/keys/keyring.js';
import { descriptorFromText, verifyDescriptor } from '../../src/protocol/descriptor.js';
import { StoreClient } from '../../src/store/client.js';
import { StoreServer } from '../../src/store/server.js';
import { BufferStore } from '../../src/store/store.js';
import { syntheticBytes } from '../../src/store/payloads/synthetic.js';
import { HashSink, rawExchange, sha256 } from '../helpers/net.js';

const keyring = new Keyring([generateClusterKey()]);
const store = new BufferStore({ keyring });
const storeServer = new StoreServer({ store });
const backend = new OdbBackend({ store, thresholdBytes: 10_000 });
const client = new StoreClient();
const servers: Server[] = [];
const big = syntheticBytes(11, 0, 300_000);
const dir = mkdtempSync(join(tmpdir(), 'odb-capture-'));
const bigFile = join(dir, 'big.bin');

before(async () => {
  await storeServer.listen('127.0.0.1', 0);
  writeFileSync(bigFile, big);
});

after(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  storeServer.closeAllConnections();
  await storeServer.close();
  await client.close();
  store.close();
});

async function serve(handler: RequestListener, capture = true): Promise<number> {
  const server = createServer(capture ? backend.handler(handler) : handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

const offer = 'GET / HTTP/1.1\r\nHost: t\r\nodb-accept: 1\r\n\r\n';

/** Parses a raw response head into status and lower-cased headers. */
function head(raw: Buffer): { status: number; headers: Record<string, string>; body: Buffer } {
  const end = raw.indexOf('\r\n\r\n');
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(lines[0]!.split(' ')[1]), headers, body: raw.subarray(end + 4) };
}

async function fetchDescribed(headers: Record<string, string>): Promise<string> {
  const descriptor = descriptorFromText(headers['odb-payload']!);
  verifyDescriptor(descriptor, keyring, Date.now());
  const sink = new HashSink();
  await client.fetch(descriptor, { start: () => sink }, { releaseOnComplete: true });
  return sink.digest();
}

const styles: Record<string, RequestListener> = {
  'end(buffer)': (_req, res) => res.end(big),
  'writeHead with length, then writes': (_req, res) => {
    res.writeHead(200, { 'content-length': big.length, 'content-type': 'x/y' });
    for (let at = 0; at < big.length; at += 7000) res.write(big.subarray(at, at + 7000));
    res.end();
  },
  'chunked writes, no length': (_req, res) => {
    res.setHeader('content-type', 'x/y');
    for (let at = 0; at < big.length; at += 4000) res.write(big.subarray(at, at + 4000));
    res.end();
  },
  'pipeline from a file': (_req, res) => {
    res.setHeader('content-length', big.length);
    pipeline(createReadStream(bigFile), res, () => {});
  },
  'string writes': (_req, res) => {
    res.write('x'.repeat(6000));
    res.end('y'.repeat(6000));
  },
};

/** What plain Node would have framed each style with: a Content-Length, or chunked. */
const originalLength: Record<string, number | undefined> = {
  'end(buffer)': big.length,
  'writeHead with length, then writes': big.length,
  'chunked writes, no length': undefined,
  'pipeline from a file': big.length,
  'string writes': undefined,
};

for (const [name, handler] of Object.entries(styles)) {
  test(`capture: ${name} goes as a descriptor with the right bytes`, async () => {
    const port = await serve(handler);
    const { status, headers, body } = head((await rawExchange(port, offer)).data);
    assert.equal(status, 200);
    assert.equal(headers['content-length'], '0');
    assert.equal(body.length, 0);
    assert.equal(headers['cache-control'], 'no-store');
    const expected =
      name === 'string writes' ? sha256('x'.repeat(6000) + 'y'.repeat(6000)) : sha256(big);
    assert.equal(await fetchDescribed(headers), expected);
    // The original framing is recorded: a length when Node would have sent one, none for chunked.
    assert.equal(headers['odb-content-length'], originalLength[name]?.toString());
  });
}

test('capture: small bodies and requests without the offer are byte-identical to plain Node', async () => {
  const small: RequestListener = (_req, res) => {
    res.setHeader('x-a', '1');
    res.write('hello ');
    res.end('world');
  };
  const plain = await serve(small, false);
  const captured = await serve(small);
  const withoutDate = (b: Buffer): string => b.toString('latin1').replace(/Date: [^\r]*\r\n/, '');
  for (const request of [offer, 'GET / HTTP/1.1\r\nHost: t\r\n\r\n']) {
    const a = await rawExchange(plain, request);
    const b = await rawExchange(captured, request);
    assert.equal(withoutDate(b.data), withoutDate(a.data));
  }
  const bigPlain = await rawExchange(
    await serve(styles['end(buffer)']!, false),
    'GET / HTTP/1.1\r\nHost: t\r\n\r\n',
  );
  assert.equal(sha256(head(bigPlain.data).body), sha256(big));
});

test('capture: a small body written in tiny pieces is replayed write by write, callbacks in order', async () => {
  const calls: number[] = [];
  const tiny: RequestListener = (_req, res) => {
    for (let i = 0; i < 300; i++) {
      const piece = i % 3 === 0 ? String.fromCharCode(97 + (i % 26)) : Buffer.of(i & 0xff);
      if (i % 50 === 0) res.write(piece, () => calls.push(i));
      else res.write(piece);
    }
    res.write('é', 'latin1');
    res.end('done');
  };
  const plain = await serve(tiny, false);
  const captured = await serve(tiny);
  const withoutDate = (b: Buffer): string => b.toString('latin1').replace(/Date: [^\r]*\r\n/, '');
  const a = await rawExchange(plain, offer);
  calls.length = 0;
  const b = await rawExchange(captured, offer);
  // Same chunk boundaries: the chunked framing on the wire is byte for byte plain Node's.
  assert.equal(withoutDate(b.data), withoutDate(a.data));
  assert.deepEqual(calls, [0, 50, 100, 150, 200, 250]);
});

test('capture: the peer closing after the descriptor head does not cut the piped body', async () => {
  // nginx (HTTP/1.0 upstream) closes its connection as soon as it has the empty response.
  const port = await serve((_req, res) => {
    res.setHeader('content-length', big.length);
    setTimeout(
      () => pipeline(createReadStream(bigFile, { highWaterMark: 16 * 1024 }), res, () => {}),
      50,
    );
  });
  const headers = await new Promise<Record<string, string>>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let raw = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      if (raw.includes('\r\n\r\n')) {
        socket.end();
        resolve(head(raw).headers);
      }
    });
    socket.on('error', reject);
    socket.write('GET / HTTP/1.0\r\nHost: t\r\nodb-accept: 1\r\n\r\n');
  });
  assert.equal(await fetchDescribed(headers), sha256(big));
});

test('capture: a handler that dies mid-body fails the fetch, it never ends cleanly', async () => {
  const port = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': big.length });
    res.write(big.subarray(0, 50_000));
    setTimeout(() => res.destroy(new Error('handler crashed')), 20);
  });
  const { headers } = head((await rawExchange(port, offer, 200)).data);
  await assert.rejects(fetchDescribed(headers), /ended before all bytes|producer/);
});
