// Bad input never gets through and never costs a byte: injected headers, forged descriptors,
// unreachable or dying stores, malformed store requests. Each case against real `odb` processes.
import assert from 'node:assert/strict';
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { after, before, test } from 'node:test';
import { startChain } from '../../dev/harness/chain.js';
import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { loadKeyring } from '../../src/core/keys/keyring.js';
import {
  descriptorFromText,
  descriptorToText,
  signDescriptor,
  type DescriptorFields,
} from '../../src/protocol/descriptor.js';
import { signHead } from '../../src/protocol/head-signature.js';
import { answerBadGateway } from '../../src/header-mode/frontend.js';
import { get, type Received } from '../helpers/http.js';
import { rawExchange, scriptedServer } from '../helpers/net.js';
import { workspace } from '../helpers/fixtures.js';
import { startBackendProcess } from '../helpers/tiers.js';

const ws = workspace();
const keyring = loadKeyring(ws.keyFile);
let upstream: Server;
let upstreamPort: number;
/** What the fake upstream answers next, and what it saw. */
let answer: (res: ServerResponse) => void = (res) => res.end('plain');
const seen: IncomingHttpHeaders[] = [];
let be: OdbProcess; // a real store to point descriptors at
let fe: OdbProcess; // odb FE in front of the fake upstream
let feVanilla: OdbProcess;
let silentStore: Awaited<ReturnType<typeof scriptedServer>>;

before(async () => {
  upstream = createServer((req, res) => {
    seen.push(req.headers);
    answer(res);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as { port: number }).port;
  silentStore = await scriptedServer(() => {});
  be = await startBackendProcess({ root: ws.dir, keyFile: ws.keyFile });
  const feArgs = (mode: string): string[] => [
    'fe',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://127.0.0.1:${upstreamPort}`,
    '--mode',
    mode,
    '--key-file',
    ws.keyFile,
    '--store-allow',
    be.addresses.store!,
    '--store-allow',
    `127.0.0.1:${silentStore.port}`,
    '--store-allow',
    '127.0.0.1:9',
    '--fetch-timeout',
    '500ms',
    // These cases check the refusals themselves; re-sending without the offer is tested apart.
    '--retry-without-offer',
    'false',
  ];
  [fe, feVanilla] = await Promise.all([
    startOdbProcess('fe', feArgs('odb')),
    startOdbProcess('fe-vanilla', feArgs('vanilla')),
  ]);
});

after(async () => {
  await Promise.all([fe?.stop(), feVanilla?.stop(), be?.stop()]);
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  await silentStore.close();
  ws.cleanup();
});

const url = (p: OdbProcess, path = '/x'): string => `http://${p.addresses.http}${path}`;

function descriptorFor(overrides: Partial<DescriptorFields>, key = keyring.signing): string {
  return descriptorToText(
    signDescriptor(
      {
        endpoint: be.addresses.store!,
        payloadId: Buffer.alloc(16, 1),
        offset: 0,
        length: 100,
        totalSize: 100,
        expiresAt: Date.now() + 60_000,
        open: false,
        ...overrides,
      },
      key,
    ),
  );
}

/** Answers like a back end: the descriptor, the original length, and their head signature. */
function answerWithDescriptor(text: string): void {
  let headMac = 'not-a-mac';
  try {
    const descriptor = descriptorFromText(text);
    headMac = signHead(
      descriptor,
      { contentLength: '100', cacheControl: undefined },
      keyring.get(descriptor.keyId) ?? keyring.signing,
    );
  } catch {
    // garbage text: no descriptor to sign for
  }
  answer = (res) =>
    res
      .writeHead(200, {
        'odb-payload': text,
        'odb-content-length': '100',
        'odb-head-mac': headMac,
        'content-length': 0,
      })
      .end();
}

/** The bytes of the front end's 502 (answerBadGateway), as a client receives them. */
async function badGatewayAnswer(): Promise<{ body: string; sha256: string; bytes: number }> {
  const server = createServer((_req, res) => answerBadGateway(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const r = await get(`http://127.0.0.1:${(server.address() as { port: number }).port}/`, {
      keepBody: true,
    });
    return { body: r.body!.toString(), sha256: r.sha256, bytes: r.bytes };
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

async function expect502(code: string, p: OdbProcess = fe): Promise<Received> {
  const logged = p.waitForLog((l) => l.code === code, 5000);
  const r = await get(url(p), { keepBody: true });
  assert.equal(r.status, 502);
  assert.equal(
    Object.keys(r.headers).some((h) => h.startsWith('odb-')),
    false,
  );
  const line = await logged;
  assert.match(String(line.reason), /.+/);
  // ... and the FE keeps serving.
  answer = (res) => res.end('still here');
  const next = await get(url(p), { keepBody: true });
  assert.equal(next.body!.toString(), 'still here');
  return r;
}

test('client-supplied odb-* headers never reach upstream, in either mode', async () => {
  answer = (res) => res.end('ok');
  const injected = { 'odb-payload': descriptorFor({}), 'Odb-Accept': '1', 'odb-anything': 'x' };
  seen.length = 0;
  await get(url(fe), { headers: injected });
  await get(url(feVanilla), { headers: injected });
  const [viaOdb, viaVanilla] = seen;
  assert.deepEqual(
    Object.keys(viaOdb!).filter((h) => h.startsWith('odb-')),
    ['odb-accept'],
  );
  assert.equal(viaOdb!['odb-accept'], '1');
  assert.deepEqual(
    Object.keys(viaVanilla!).filter((h) => h.startsWith('odb-')),
    [],
  );
});

test('bad MAC → 502, logged, FE serves on', async () => {
  answerWithDescriptor(descriptorFor({}, { id: keyring.signing.id, secret: Buffer.alloc(32, 7) }));
  await expect502('ODB_ERR_BAD_MAC');
});

test('unknown key id → 502', async () => {
  answerWithDescriptor(
    descriptorFor({}, { id: (keyring.signing.id + 1) % 65536, secret: keyring.signing.secret }),
  );
  await expect502('ODB_ERR_UNKNOWN_KEY');
});

test('expired descriptor → 502', async () => {
  answerWithDescriptor(descriptorFor({ expiresAt: Date.now() - 1000 }));
  await expect502('ODB_ERR_EXPIRED');
});

test('foreign endpoint → 502', async () => {
  answerWithDescriptor(descriptorFor({ endpoint: '127.0.0.2:8081' }));
  await expect502('ODB_ERR_FOREIGN_ENDPOINT');
});

test('garbage descriptor → 502', async () => {
  answerWithDescriptor('not-a-descriptor');
  await expect502('ODB_ERR_BAD_DESCRIPTOR');
});

test('a valid descriptor of a payload the store does not hold → 502', async () => {
  answerWithDescriptor(descriptorFor({ payloadId: Buffer.alloc(16, 0xee) }));
  await expect502('ODB_ERR_NOT_FOUND');
});

test('a descriptor reaching a vanilla FE → 502, never an empty body', async () => {
  answerWithDescriptor(descriptorFor({}));
  // Refused as a descriptor response to a request without the offer (logged with its code), and
  // the vanilla FE serves on.
  const r = await expect502('ODB_ERR_PROTOCOL', feVanilla);
  // Never the descriptor response's empty body relayed: the whole 502 body, as framed.
  const expected = await badGatewayAnswer();
  assert.ok(expected.bytes > 0);
  assert.equal(r.complete, true);
  assert.equal(r.headers['content-length'], String(expected.bytes));
  assert.equal(r.bytes, expected.bytes, `body ${JSON.stringify(r.body!.toString())}`);
  assert.equal(r.sha256, expected.sha256, `body ${JSON.stringify(r.body!.toString())}`);
});

test('unreachable store → 502 within the fetch timeout (refused, and silent)', async () => {
  for (const endpoint of ['127.0.0.1:9', `127.0.0.1:${silentStore.port}`]) {
    answerWithDescriptor(descriptorFor({ endpoint }));
    const started = Date.now();
    const r = await get(url(fe));
    const took = Date.now() - started;
    assert.equal(r.status, 502, endpoint);
    assert.ok(took < 500 + 1500, `${endpoint}: 502 after ${took} ms with a 500 ms timeout`);
  }
});

test('malformed input on the store port closes that connection only', async () => {
  const port = Number(be.addresses.store!.split(':')[1]);
  const garbage = await rawExchange(port, Buffer.from([0, 1, 2, 3, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]));
  assert.equal(garbage.closed, true);
  const ping = await rawExchange(port, 'GET /odb/v1/ping HTTP/1.1\r\nHost: s\r\n\r\n');
  assert.match(ping.data.toString(), /^HTTP\/1.1 200[\s\S]*"ok":true/);
});

test('a store dying mid-body: the client connection is cut short of the announced length', async () => {
  const chain = await startChain({
    mode: 'odb',
    root: ws.dir,
    keyFile: ws.keyFile,
    logLevel: 'warn',
  });
  try {
    const size = 256 * 1024 * 1024;
    const r = await get(chain.url(`/bytes/${size}`), {
      stallMs: 300, // the client stops reading, so the transfer is still under way…
      onFirstBytes: () => chain.be.child.kill('SIGKILL'), // …when the owner dies.
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(size));
    assert.equal(r.complete, false);
    assert.ok(r.bytes < size, `received ${r.bytes} of ${size}`);
    await chain.fe.waitForLog((l) => l.code === 'ODB_ERR_FETCH_ABORTED', 5000);
  } finally {
    await chain.stop();
  }
});
