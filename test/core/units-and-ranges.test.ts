import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { parseDuration, parseSize } from '../../src/core/units.js';
import { isOdbError } from '../../src/core/errors.js';
import { parseHostPort } from '../../src/core/net/address.js';
import { parseByteRange } from '../../src/protocol/byte-range.js';
import { planResponse } from '../../src/tiers/representation.js';

test('sizes and durations', () => {
  assert.equal(parseSize('64KiB'), 65536);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('1.5MiB'), 1572864);
  assert.equal(parseSize(7), 7);
  for (const bad of ['', 'KiB', '1 lb', '-1', '1e3']) {
    assert.throws(
      () => parseSize(bad),
      (e: unknown) => isOdbError(e, 'ODB_ERR_INVALID_OPTION'),
      bad,
    );
  }
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration(5), 5);
  assert.throws(
    () => parseDuration('5 parsecs'),
    (e: unknown) => isOdbError(e, 'ODB_ERR_INVALID_OPTION'),
  );
});

test('host:port', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
  assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseHostPort(':8080'), { host: '0.0.0.0', port: 8080 });
  for (const bad of ['localhost', '1.2.3.4:99999', '::1:80', 'a:b']) {
    assert.throws(
      () => parseHostPort(bad),
      (e: unknown) => isOdbError(e, 'ODB_ERR_INVALID_OPTION'),
      bad,
    );
  }
});

test('byte ranges (RFC 9110)', () => {
  assert.deepEqual(parseByteRange('bytes=0-99', 1000), { start: 0, end: 99 });
  assert.deepEqual(parseByteRange('bytes=900-', 1000), { start: 900, end: 999 });
  assert.deepEqual(parseByteRange('bytes=-100', 1000), { start: 900, end: 999 });
  assert.deepEqual(parseByteRange('bytes=-5000', 1000), { start: 0, end: 999 });
  assert.deepEqual(parseByteRange('bytes=990-5000', 1000), { start: 990, end: 999 });
  assert.equal(parseByteRange('bytes=1000-', 1000), 'unsatisfiable');
  assert.equal(parseByteRange('bytes=-0', 1000), 'unsatisfiable');
  assert.equal(parseByteRange('bytes=0-0', 0), 'unsatisfiable');
  assert.equal(parseByteRange('bytes=5-2', 1000), undefined);
  assert.equal(parseByteRange('bytes=0-1,5-6', 1000), undefined);
  assert.equal(parseByteRange('items=0-1', 1000), undefined);
  assert.equal(parseByteRange(undefined, 1000), undefined);
});

function request(headers: Record<string, string>): IncomingMessage {
  return { headers } as IncomingMessage;
}

test('response planning: conditional requests and ranges', () => {
  const rep = {
    size: 1000,
    etag: '"v1"',
    lastModified: new Date('2026-01-01T00:00:00Z'),
    contentType: 'x/y',
  };
  assert.equal(planResponse(request({}), rep).statusCode, 200);
  assert.equal(planResponse(request({ 'if-none-match': '"v1"' }), rep).statusCode, 304);
  assert.equal(planResponse(request({ 'if-none-match': 'W/"v1", "v0"' }), rep).statusCode, 304);
  assert.equal(planResponse(request({ 'if-none-match': '"v2"' }), rep).statusCode, 200);
  assert.equal(
    planResponse(request({ 'if-modified-since': 'Thu, 01 Jan 2026 00:00:00 GMT' }), rep).statusCode,
    304,
  );
  const partial = planResponse(request({ range: 'bytes=10-19' }), rep);
  assert.deepEqual(
    [partial.statusCode, partial.start, partial.length, partial.headers['content-range']],
    [206, 10, 10, 'bytes 10-19/1000'],
  );
  assert.equal(
    planResponse(request({ range: 'bytes=10-19', 'if-range': '"old"' }), rep).statusCode,
    200,
  );
  const bad = planResponse(request({ range: 'bytes=2000-' }), rep);
  assert.deepEqual([bad.statusCode, bad.headers['content-range']], [416, 'bytes */1000']);
});
