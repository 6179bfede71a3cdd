// What the front end trusts of a descriptor response (issue 13, items 2, 3, 9, 11, 14): framing
// and restored headers only from signed data; a stripped, altered or misplaced descriptor is a
// 502 (or, for a GET, the request sent again without the offer), never a clean wrong body; a
// key mismatch shows at start-up; refused payloads are released; a client that leaves is a
// client abort. A real `odb be` and `odb fe`, with a tampering intermediary between them.
import assert from 'node:assert/strict';
import {
  Agent,
  createServer,
  request,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type Server,
} from 'node:http';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { freePort } from '../../dev/harness/free-port.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { odbBin, startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { loadKeyring } from '../../src/core/keys/keyring.js';
import { descriptorToText, signDescriptor } from '../../src/protocol/descriptor.js';
import { signHead } from '../../src/protocol/head-signature.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { get } from '../helpers/http.js';
import { eventually, rawExchange } from '../helpers/net.js';
import { workspace } from '../helpers/fixtures.js';
import { startBackendProcess } from '../helpers/tiers.js';

const ws = workspace();
const otherKey = workspace('odb-other-key-'); // a second cluster key, for the mismatch case
let be: OdbProcess;
let tamperer: Server;
let tamperPort: number;
/** How the intermediary alters the back end's response head; identity by default. */
let tamper: (status: number, headers: IncomingHttpHeaders) => [number, OutgoingHttpHeaders] = (
  status,
  headers,
) => [status, headers];
const running: OdbProcess[] = [];

before(async () => {
  be = await startBackendProcess({ root: ws.dir, keyFile: ws.keyFile, metrics: true });
  const [beHost, bePort] = be.addresses.http!.split(':');
  const agent = new Agent({ keepAlive: true });
  // A plain Node proxy that rewrites response heads: what a WAF or a buggy gateway might do.
  tamperer = createServer((req, res) => {
    const upstream = request(
      {
        host: beHost,
        port: Number(bePort),
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (answer) => {
        const [status, headers] = tamper(answer.statusCode!, { ...answer.headers });
        res.writeHead(status, headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => tamperer.listen(0, '127.0.0.1', r));
  tamperPort = (tamperer.address() as { port: number }).port;
});

after(async () => {
  await Promise.all([...running.map((p) => p.stop()), be?.stop()]);
  tamperer.closeAllConnections();
  await new Promise((r) => tamperer.close(r));
  ws.cleanup();
  otherKey.cleanup();
});

async function frontEnd(extra: string[] = [], keyFile = ws.keyFile): Promise<OdbProcess> {
  const fe = await startOdbProcess('fe', [
    'fe',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://127.0.0.1:${tamperPort}`,
    '--key-file',
    keyFile,
    '--store-allow',
    be.addresses.store!,
    '--metrics-listen',
    '127.0.0.1:0',
    '--log-level',
    'info',
    ...extra,
  ]);
  running.push(fe);
  return fe;
}

/** Resolves once the store holds no more payloads than `before` (what this test added went). */
async function storeBackTo(before: number, what: string): Promise<void> {
  await eventually(
    async () => metricValue(await scrape(be.addresses.metrics!), 'odb_store_entries') <= before,
    3000,
    what,
  );
}

async function storeEntries(): Promise<number> {
  return metricValue(await scrape(be.addresses.metrics!), 'odb_store_entries');
}

const size = 1_000_000;
const expected = syntheticSha256(7, 0, size);
const path = `/bytes/${size}?seed=7`;

/** Every alteration a tampering intermediary could make to the restored headers. */
const alterations: Record<string, (h: IncomingHttpHeaders) => void> = {
  'odb-content-length 1e+6': (h) => void (h['odb-content-length'] = '1e+6'),
  'odb-content-length 0xf4240': (h) => void (h['odb-content-length'] = '0xf4240'),
  'odb-content-length 1 (response splitting)': (h) => void (h['odb-content-length'] = '1'),
  'odb-content-length +1000000': (h) => void (h['odb-content-length'] = '+1000000'),
  'odb-content-length 01000000': (h) => void (h['odb-content-length'] = '01000000'),
  'odb-content-length removed': (h) => void delete h['odb-content-length'],
  'odb-cache-control added': (h) => void (h['odb-cache-control'] = 'public, max-age=31536000'),
  'odb-head-mac removed': (h) => void delete h['odb-head-mac'],
  'odb-head-mac of another response': (h) => void (h['odb-head-mac'] = 'A'.repeat(43)),
  'odb-payload stripped (a WAF dropping long headers)': (h) => void delete h['odb-payload'],
};

test('a tampered or stripped descriptor head is a 502, and nothing follows it on the connection', async () => {
  const fe = await frontEnd(['--retry-without-offer', 'false']);
  const fePort = Number(fe.addresses.http!.split(':')[1]);
  try {
    for (const [name, alter] of Object.entries(alterations)) {
      tamper = (status, headers) => (alter(headers), [status, headers]);
      // Two requests on one connection: with framing taken from an unsigned header, the first
      // answer would be cut short and payload bytes read as the second response.
      const request1 = `GET ${path} HTTP/1.1\r\nHost: f\r\n\r\n`;
      const { data } = await rawExchange(fePort, request1 + request1, 400);
      const text = data.toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
      assert.deepEqual(statuses, ['502', '502'], `${name}: answered ${statuses.join(', ')}`);
      assert.equal(data.length < 1024, true, `${name}: ${data.length} bytes came back`);
    }
    const logged = fe.logs.filter((l) => l.msg === 'descriptor refused: answered 502');
    assert.ok(logged.some((l) => l.code === 'ODB_ERR_BAD_HEAD'));
    assert.ok(logged.every((l) => typeof l.reason === 'string' && l.reason.length > 0));
  } finally {
    tamper = (status, headers) => [status, headers];
  }
  // Untampered, the same request is delivered exact.
  const ok = await get(`http://${fe.addresses.http}${path}`);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['content-length'], String(size));
  assert.equal(ok.sha256, expected);
});

test('a descriptor on a response without a body (204, 205, 304) is refused', async () => {
  const fe = await frontEnd(['--retry-without-offer', 'false']);
  try {
    for (const status of [204, 205, 304]) {
      tamper = (_s, headers) => [status, headers];
      const r = await get(`http://${fe.addresses.http}${path}`);
      assert.equal(r.status, 502, `descriptor on a ${status}`);
    }
  } finally {
    tamper = (status, headers) => [status, headers];
  }
});

test('a GET whose descriptor is unusable is sent again without the offer: right bytes, counted', async () => {
  const fe = await frontEnd();
  const held = await storeEntries();
  try {
    tamper = (status, headers) => {
      if (headers['odb-payload']) headers['odb-content-length'] = '1';
      return [status, headers];
    };
    const r = await get(`http://${fe.addresses.http}${path}`);
    assert.equal(r.status, 200);
    assert.equal(r.sha256, expected);
    const metrics = await scrape(fe.addresses.metrics!);
    assert.equal(metricValue(metrics, 'odb_retries_total', { code: 'ODB_ERR_BAD_HEAD' }), 1);
    // A POST is not repeated: it gets the 502.
    const post = await new Promise<number>((resolve, reject) => {
      const req = request(`http://${fe.addresses.http}${path}`, { method: 'POST' }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end('x');
    });
    assert.equal(post, 405); // the back end answers POST with 405: no descriptor, nothing to refuse
  } finally {
    tamper = (status, headers) => [status, headers];
  }
  // The refused payload was released at once, not left to its TTL.
  await storeBackTo(held, 'refused payload released');
});

test('a key mismatch shows at start-up and in metrics; large responses still arrive exact', async () => {
  const fe = await frontEnd([], otherKey.keyFile);
  const held = await storeEntries();
  const line = await fe.waitForLog((l) => l.msg?.startsWith('store key check failed') === true);
  assert.equal(line.store, be.addresses.store);
  assert.equal(line.result, 'unknown-key');
  const metrics = await scrape(fe.addresses.metrics!);
  assert.equal(
    metricValue(metrics, 'odb_store_key_check', {
      store: be.addresses.store!,
      result: 'unknown-key',
    }),
    1,
  );
  const r = await get(`http://${fe.addresses.http}${path}`);
  assert.equal(r.status, 200);
  assert.equal(r.sha256, expected);
  const after = await scrape(fe.addresses.metrics!);
  assert.equal(metricValue(after, 'odb_retries_total', { code: 'ODB_ERR_UNKNOWN_KEY' }), 1);
  await storeBackTo(held, 'refused payload released');
  // With matching keys the check says so.
  const good = await frontEnd();
  const ok = await good.waitForLog((l) => l.msg?.startsWith('store key check:') === true);
  assert.match(String(ok.msg), /signs with a key held here/);
});

test('a client that leaves mid-body is a client abort, not a store failure; the payload is released', async () => {
  const fe = await frontEnd();
  const held = await storeEntries();
  await new Promise<void>((resolve) => {
    const req = request(`http://${fe.addresses.http}/bytes/67108864`, (res) => {
      res.once('data', () => req.destroy());
    });
    req.on('error', () => {});
    req.on('close', () => resolve());
    req.end();
  });
  await eventually(
    async () => metricValue(await scrape(fe.addresses.metrics!), 'odb_client_aborts_total') === 1,
    5000,
    'client abort counted',
  );
  const metrics = await scrape(fe.addresses.metrics!);
  assert.equal(metricValue(metrics, 'odb_errors_total'), 0);
  await storeBackTo(held, 'abandoned payload released');
});

test('a descriptor that names a path back to the front end cannot start a loop', async () => {
  // An upstream that answers everything with a descriptor naming a "store" which is in fact an
  // `odb is` relaying to the front end itself: a careless --store-allow.
  let upstreamRequests = 0;
  let storeEndpoint = '';
  const keyring = loadKeyring(ws.keyFile);
  const looping = createServer((req, res) => {
    upstreamRequests++;
    req.resume();
    const descriptor = signDescriptor(
      {
        endpoint: storeEndpoint,
        payloadId: randomBytes(16),
        offset: 0,
        length: 100,
        totalSize: 100,
        expiresAt: Date.now() + 60_000,
        open: false,
      },
      keyring.signing,
    );
    const head = { contentLength: '100', cacheControl: undefined };
    res
      .writeHead(200, {
        'odb-payload': descriptorToText(descriptor),
        'odb-content-length': '100',
        'odb-head-mac': signHead(descriptor, head, keyring.signing),
        'content-length': 0,
      })
      .end();
  });
  await new Promise<void>((r) => looping.listen(0, '127.0.0.1', r));
  const fePort = await freePort();
  const is = await startOdbProcess('is-loop', [
    'is',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://127.0.0.1:${fePort}`,
    '--log-level',
    'warn',
  ]);
  running.push(is);
  storeEndpoint = is.addresses.http!;
  const fe = await startOdbProcess('fe-loop', [
    'fe',
    '--listen',
    `127.0.0.1:${fePort}`,
    '--upstream',
    `http://127.0.0.1:${(looping.address() as { port: number }).port}`,
    '--key-file',
    ws.keyFile,
    '--store-allow',
    storeEndpoint,
    '--fetch-timeout',
    '1s',
    '--log-level',
    'warn',
  ]);
  running.push(fe);
  try {
    const r = await get(`http://127.0.0.1:${fePort}/anything`);
    assert.equal(r.status, 502);
    await new Promise((r) => setTimeout(r, 1500));
    const settled = upstreamRequests;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(upstreamRequests, settled, 'requests kept coming: a loop');
    // The client's request, its one re-send without the offer, and the fetch relayed plainly.
    assert.ok(settled <= 4, `${settled} upstream requests for one client request`);
  } finally {
    looping.closeAllConnections();
    await new Promise((r) => looping.close(r));
  }
});

test('odb fe in odb mode needs explicit stores, and none of them may be itself', async () => {
  const fe = async (...args: string[]): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [odbBin, 'fe', '--key-file', ws.keyFile, ...args],
        (err, _o, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
  const none = await fe('--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9');
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--store-allow is required in odb mode/);
  const port = await freePort();
  const self = await fe(
    '--listen',
    `127.0.0.1:${port}`,
    '--upstream',
    'http://127.0.0.1:9',
    '--store-allow',
    `localhost:${port}`,
  );
  assert.equal(self.code, 2);
  assert.match(self.stderr, /own listener/);
});
