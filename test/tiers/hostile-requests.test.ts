// No request may take a tier down (issue 13, item 1): whatever request line, headers and body
// Node's parser accepts, every listener of every tier answers with an HTTP status or closes the
// connection, and keeps serving correct requests. Thrown over raw sockets at real processes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startChain, type Chain } from '../../dev/harness/chain.js';
import type { OdbProcess } from '../../src/demo/tier-process.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { get } from '../helpers/http.js';
import { rawExchange } from '../helpers/net.js';
import { workspace } from '../helpers/fixtures.js';
import { fuzzRuns } from '../helpers/repo.js';

const ws = workspace();
let chain: Chain;

before(async () => {
  ws.file('file.bin', 300_000, 5);
  chain = await startChain({ mode: 'odb', root: ws.dir, keyFile: ws.keyFile, logLevel: 'warn' });
});

after(async () => {
  await chain?.stop();
  ws.cleanup();
});

const port = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

/** Every listener of the chain, by name. */
function listeners(): Record<string, number> {
  const be = chain.be.addresses;
  const fe = chain.fe.addresses;
  const is = (chain.intermediates[0] as OdbProcess).addresses;
  return {
    'fe http': port(fe.http!),
    'fe metrics': port(fe.metrics!),
    'is http': port(is.http!),
    'is metrics': port(is.metrics!),
    'be http': port(be.http!),
    'be store': port(be.store!),
    'be metrics': port(be.metrics!),
  };
}

function assertAllAlive(context: string): void {
  for (const p of chain.processes as OdbProcess[]) {
    assert.equal(p.child.exitCode, null, `${p.name} exited after ${context}; ${p.stderr()}`);
    assert.equal(p.child.signalCode, null, `${p.name} was killed after ${context}`);
  }
}

/** A correct large request through the whole chain still gets exact bytes. */
async function assertServing(): Promise<void> {
  const r = await get(chain.url('/bytes/1048576?seed=3'));
  assert.equal(r.status, 200);
  assert.equal(r.sha256, syntheticSha256(3, 0, 1048576));
  const f = await get(chain.url('/file.bin'));
  assert.equal(f.sha256, syntheticSha256(5, 0, 300_000));
}

/** What a listener answered: a status line, or nothing before it closed or went quiet. */
function statusOf(data: Buffer): number | undefined {
  const match = /^HTTP\/1\.[01] (\d{3}) /.exec(data.toString('latin1'));
  return match ? Number(match[1]) : undefined;
}

test('the request-targets that stopped the back end are answered, and every tier lives on', async () => {
  const fe = listeners()['fe http']!;
  for (const target of ['//', '//:', '/\\', '//a:b@', '//x:99999/', '//evil.example/x']) {
    const { data } = await rawExchange(fe, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 300);
    const status = statusOf(data);
    assert.ok(status === 400 || status === 404, `GET ${target}: answered ${status ?? 'nothing'}`);
    assertAllAlive(`GET ${target}`);
  }
  const star = await rawExchange(fe, 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', 300);
  assert.equal(statusOf(star.data), 204);
  const absolute = await rawExchange(
    fe,
    'GET http://somewhere/bytes/10?seed=1 HTTP/1.1\r\nHost: x\r\n\r\n',
    300,
  );
  assert.equal(statusOf(absolute.data), 200);
  await assertServing();
});

// Pieces a hostile client combines: odd forms of every part of a request head.
const methodArb = fc.oneof(
  fc.constantFrom(
    'GET',
    'HEAD',
    'POST',
    'PUT',
    'DELETE',
    'OPTIONS',
    'PATCH',
    'TRACE',
    'CONNECT',
    'PROPFIND',
    'M-SEARCH',
    'QUERY',
    'get',
    'G\x00T',
    '',
  ),
  fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/),
);
const targetArb = fc.oneof(
  fc.constantFrom(
    '/',
    '//',
    '//:',
    '/\\',
    '//a:b@',
    '//x:99999/',
    '*',
    'http://evil:1/x',
    'http://[::1]:1/odb/v1/ping',
    'https://user:pw@h/',
    'h:80',
    '/odb/v1/ping',
    '/odb/v1/ping?challenge=AAAAAAAAAAAAAAAAAAAAAA',
    '/odb/v1/payload/AAAA',
    '/odb/v1/references',
    '/metrics',
    '/bytes/99999999999999999999',
    '/bytes/-1',
    '/bytes/10?seed=-1',
    '/bytes/10?seed=1e3',
    '/chunked/10?chunk=0',
    '/chunked/100?chunk=-5',
    '/%',
    '/%00',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/..%2f..%2fetc%2fpasswd',
    '/file.bin#frag',
    '/file.bin?',
    'x',
    '/\x7f',
    '/é',
    `/${'a'.repeat(9000)}`,
  ),
  fc
    .string({ unit: fc.integer({ min: 0x21, max: 0xff }).map((c) => String.fromCharCode(c)) })
    .map((s) => `/${s}`),
);
const versionArb = fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.x', '');
const headerArb = fc.oneof(
  fc.constantFrom<[string, string]>(
    ['Host', 'x'],
    ['Host', ''],
    ['Host', 'a b'],
    ['Content-Length', '0'],
    ['Content-Length', '5'],
    ['Content-Length', '-1'],
    ['Content-Length', '1e3'],
    ['Content-Length', '99999999999999999999'],
    ['Transfer-Encoding', 'chunked'],
    ['Transfer-Encoding', 'gzip'],
    ['Transfer-Encoding', 'chunked, chunked'],
    ['Transfer-Encoding', 'identity'],
    ['Expect', '100-continue'],
    ['Expect', 'something'],
    ['Connection', 'upgrade'],
    ['Connection', 'close'],
    ['Connection', 'keep-alive, te, content-length'],
    ['Upgrade', 'websocket'],
    ['Upgrade', 'h2c'],
    ['Upgrade', 'odb-references/1'],
    ['TE', 'trailers'],
    ['odb-accept', '1'],
    ['odb-accept', '2'],
    ['odb-payload', 'AAAA'],
    ['odb-release', 'complete'],
    ['Range', 'bytes=5-1'],
    ['Range', 'bytes=-0'],
    ['Range', 'bytes=0-1,3-4'],
    ['Range', 'bytes=99999999999999999999-'],
    ['If-None-Match', '*'],
    ['If-Modified-Since', 'yesterday'],
    ['If-Range', 'W/"x"'],
    ['Cache-Control', 'no-cache'],
    ['X-Forwarded-For', '1.2.3.4'],
    ['Cookie', 'a=b'],
    ['Authorization', 'Basic AAAA'],
  ),
  fc.tuple(
    fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}$/),
    fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)) }),
  ),
);
const requestArb = fc.record({
  method: methodArb,
  target: targetArb,
  version: versionArb,
  headers: fc.array(headerArb, { maxLength: 12 }),
  body: fc.uint8Array({ maxLength: 200 }),
  lineEnd: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n'),
});
type HostileRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function encode(r: HostileRequest): Buffer {
  const head =
    `${r.method} ${r.target} ${r.version}${r.lineEnd}` +
    r.headers.map(([n, v]) => `${n}: ${v}${r.lineEnd}`).join('') +
    r.lineEnd;
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(r.body)]);
}

test('property: random request heads at every listener get a status or a close, and no tier dies', async () => {
  const runs = Math.max(40, Math.floor(fuzzRuns / 20));
  const seed = Number(process.env.ODB_FUZZ_SEED ?? Date.now() % 2 ** 31);
  const cases = fc.sample(requestArb, { numRuns: runs, seed });
  for (const [name, listenPort] of Object.entries(listeners())) {
    // In batches: many listeners keep a connection open after answering, so each case waits
    // for quiet; side by side, the waits overlap.
    for (let at = 0; at < cases.length; at += 20) {
      const batch = cases.slice(at, at + 20);
      const answers = await Promise.all(
        batch.map((c) => rawExchange(listenPort, encode(c), 250).catch(() => undefined)),
      );
      answers.forEach((answer, i) => {
        const status = answer && statusOf(answer.data);
        const shown = JSON.stringify(encode(batch[i]!).toString('latin1').slice(0, 300));
        // A hostile request is the client's fault: 4xx, or whatever the resource is (2xx/3xx).
        // 500 or 502 would mean a tier failed on it.
        assert.ok(
          status === undefined || (status !== 500 && status !== 502),
          `${name} answered ${status} to ${shown} (seed ${seed})`,
        );
      });
      assertAllAlive(`${name} batch ${at / 20} (seed ${seed})`);
    }
  }
  await assertServing();
});
