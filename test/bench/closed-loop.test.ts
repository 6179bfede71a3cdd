// The closed-loop scenario's byte check: a cell is measured only when one response fetched with
// curl through the chain is the file, byte for byte.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { checkBytes } from '../../bench/closed-loop.js';

test('closed loop: the byte check passes the file and fails a changed body, a short one, a 404', async () => {
  const body = Buffer.from('the payload bytes');
  const server = createServer((req, res) => {
    if (req.url === '/same') res.end(body);
    else if (req.url === '/changed') res.end(Buffer.from('the payload bytez'));
    else if (req.url === '/short') res.end(body.subarray(0, 5));
    else res.writeHead(404).end('no');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = (path: string): string =>
    `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  const file = {
    size: body.length,
    path: '/same',
    sha256: createHash('sha256').update(body).digest('hex'),
  };
  try {
    const same = await checkBytes(url('/same'), file);
    assert.deepEqual(same, {
      ok: true,
      expectedSha256: file.sha256,
      sha256: file.sha256,
      bytes: body.length,
    });
    const changed = await checkBytes(url('/changed'), file);
    assert.equal(changed.ok, false);
    assert.match(changed.error!, /got 17 B with SHA-256 [0-9a-f]{64}, the file has 17 B/);
    const short = await checkBytes(url('/short'), file);
    assert.equal(short.ok, false);
    assert.match(short.error!, /got 5 B/);
    const missing = await checkBytes(url('/missing'), file);
    assert.equal(missing.ok, false);
    assert.match(missing.error!, /curl exited with 22/);
  } finally {
    server.close();
  }
});
