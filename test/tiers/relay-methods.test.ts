// Ordinary requests pass an ODB chain as they pass without it (issue 13, item 14): uploads of any
// size (curl sends `Expect: 100-continue` by itself above 1 MiB), chunked uploads, every method
// the back end accepts, OPTIONS *. Real `odb fe` (odb mode) → `odb is` → a Node back end that
// answers with what it received; each answer compared with the back end's answer direct.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { rawExchange, sha256 } from '../helpers/net.js';
import { workspace } from '../helpers/fixtures.js';

const run = promisify(execFile);
const ws = workspace();
let echo: Server;
let echoUrl: string;
let fe: OdbProcess;
let is: OdbProcess;

/** What the back end saw of a request. */
interface Seen {
  method: string;
  url: string;
  length: number;
  sha256: string;
  expect: string | null;
}

before(async () => {
  echo = createServer((req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    req.on('end', () => {
      const seen: Seen = {
        method: req.method!,
        url: req.url!,
        length,
        sha256: hash.digest('hex'),
        expect: req.headers.expect ?? null,
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(seen));
    });
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoUrl = `http://127.0.0.1:${(echo.address() as { port: number }).port}`;
  is = await startOdbProcess('is', ['is', '--listen', '127.0.0.1:0', '--upstream', echoUrl]);
  fe = await startOdbProcess('fe', [
    'fe',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `http://${is.addresses.http}`,
    '--key-file',
    ws.keyFile,
    '--store-allow',
    '127.0.0.1:9',
  ]);
});

after(async () => {
  await Promise.all([fe?.stop(), is?.stop()]);
  echo.closeAllConnections();
  await new Promise((r) => echo.close(r));
  ws.cleanup();
});

/** Sends `body` with node:http (Content-Length unless `chunked`); resolves with status and answer. */
function send(
  base: string,
  method: string,
  body: Buffer,
  chunked = false,
): Promise<{ status: number; seen?: Seen }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/upload?x=1`, { method }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString();
        resolve({ status: res.statusCode!, seen: text ? (JSON.parse(text) as Seen) : undefined });
      });
    });
    req.on('error', reject);
    if (chunked) {
      for (let at = 0; at < body.length; at += 65536) req.write(body.subarray(at, at + 65536));
      req.end();
    } else {
      req.setHeader('content-length', body.length);
      req.end(body);
    }
  });
}

const payload = (size: number): Buffer => {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
};

test('uploads of every size and method arrive as they do without ODB', async () => {
  const feUrl = `http://${fe.addresses.http}`;
  const cases: [string, number, boolean][] = [
    ['POST', 0, false],
    ['POST', 1, false],
    ['POST', 65536, false],
    ['POST', 10 * 1024 * 1024, false],
    ['PUT', 3 * 1024 * 1024, true],
    ['PATCH', 1000, false],
    ['DELETE', 10, false],
    ['PROPFIND', 100, true],
    ['GET', 5, false],
    ['OPTIONS', 0, false],
  ];
  for (const [method, size, chunked] of cases) {
    const body = payload(size);
    const direct = await send(echoUrl, method, body, chunked);
    const through = await send(feUrl, method, body, chunked);
    const what = `${method} ${size} B${chunked ? ' chunked' : ''}`;
    assert.equal(through.status, direct.status, what);
    assert.equal(through.seen?.sha256, sha256(body), what);
    assert.equal(through.seen?.length, size, what);
    assert.equal(through.seen?.method, method, what);
    assert.equal(through.seen?.url, '/upload?x=1', what);
  }
});

test('curl uploads with Expect: 100-continue (its default above 1 MiB) pass the chain', async () => {
  const file = join(ws.dir, 'upload.bin');
  const body = payload(5 * 1024 * 1024);
  writeFileSync(file, body);
  for (const base of [echoUrl, `http://${fe.addresses.http}`]) {
    const { stdout } = await run('curl', [
      '-sS',
      '--fail-with-body',
      '--data-binary',
      `@${file}`,
      '-H',
      'content-type: application/octet-stream',
      `${base}/upload?x=1`,
    ]);
    const seen = JSON.parse(stdout) as Seen;
    assert.equal(seen.sha256, sha256(body), base);
    assert.equal(seen.method, 'POST');
  }
  // The back end sees no Expect from the relay: the front end answered 100 Continue itself.
  const { stdout } = await run('curl', [
    '-sS',
    '-H',
    'Expect: 100-continue',
    '--data-binary',
    'x',
    `http://${fe.addresses.http}/upload?x=1`,
  ]);
  assert.equal((JSON.parse(stdout) as Seen).expect, null);
});

test('OPTIONS * is answered by each relay, not a 502', async () => {
  for (const tier of [fe, is]) {
    const port = Number(tier.addresses.http!.split(':')[1]);
    const { data } = await rawExchange(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', 300);
    assert.match(data.toString('latin1'), /^HTTP\/1\.1 204 /, tier.name);
  }
});
