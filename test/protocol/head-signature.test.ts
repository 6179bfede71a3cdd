// The head signature of descriptor responses (docs/protocol.md §2) and the front end's restoring
// of the original headers: framing and caching only from signed data.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isOdbError } from '../../src/core/errors.js';
import { restoreOriginalHeaders } from '../../src/header-mode/descriptor-response.js';
import { generateClusterKey, Keyring } from '../../src/core/keys/keyring.js';
import { signDescriptor } from '../../src/protocol/descriptor.js';
import { signHead, verifyHead, type RestoredHead } from '../../src/protocol/head-signature.js';
import { fuzzRuns } from '../helpers/repo.js';

const key = generateClusterKey();
const keyring = new Keyring([key]);
const descriptor = signDescriptor(
  {
    endpoint: '127.0.0.1:9000',
    payloadId: Buffer.alloc(16, 7),
    offset: 0,
    length: 1000,
    totalSize: 1000,
    expiresAt: 2_000_000_000_000,
    open: false,
  },
  key,
);

const latin1 = fc.string({
  unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)),
  maxLength: 60,
});
const headArb = fc.record({
  contentLength: fc.option(latin1, { nil: undefined }),
  cacheControl: fc.option(latin1, { nil: undefined }),
});

const isBadHead = (err: unknown): boolean => isOdbError(err, 'ODB_ERR_BAD_HEAD');

test('property: a signed head verifies; any other head, or another descriptor, does not', () => {
  fc.assert(
    fc.property(headArb, headArb, (head: RestoredHead, other: RestoredHead) => {
      const mac = signHead(descriptor, head, key);
      verifyHead(descriptor, head, mac, keyring);
      const same =
        other.contentLength === head.contentLength && other.cacheControl === head.cacheControl;
      if (!same) assert.throws(() => verifyHead(descriptor, other, mac, keyring), isBadHead);
    }),
    { numRuns: fuzzRuns },
  );
  // Absent and empty are different heads; so are a header's value moved to the other header.
  const mac = signHead(descriptor, { contentLength: undefined, cacheControl: '' }, key);
  assert.throws(
    () => verifyHead(descriptor, { contentLength: '', cacheControl: undefined }, mac, keyring),
    isBadHead,
  );
  const narrowed = signDescriptor({ ...descriptor, length: 999 }, key);
  const head = { contentLength: '1000', cacheControl: undefined };
  assert.throws(
    () => verifyHead(narrowed, head, signHead(descriptor, head, key), keyring),
    isBadHead,
  );
});

test('property: a malformed or missing odb-head-mac is refused, never thrown as something else', () => {
  fc.assert(
    fc.property(fc.option(fc.string({ maxLength: 60 }), { nil: undefined }), (text) => {
      assert.throws(
        () =>
          verifyHead(descriptor, { contentLength: '1000', cacheControl: undefined }, text, keyring),
        isBadHead,
      );
    }),
    { numRuns: fuzzRuns },
  );
});

test('Content-Length comes from the descriptor; only its canonical decimal is accepted', () => {
  const headers = (contentLength: string): Record<string, string> => {
    const head = { contentLength, cacheControl: 'max-age=60' };
    return {
      'content-type': 'video/mp4',
      'content-length': '0',
      'cache-control': 'no-store',
      'odb-payload': 'x',
      'odb-content-length': contentLength,
      'odb-cache-control': 'max-age=60',
      'odb-head-mac': signHead(descriptor, head, key),
    };
  };
  const restored = restoreOriginalHeaders(headers('1000'), descriptor, keyring);
  assert.deepEqual(restored, {
    'content-type': 'video/mp4',
    'content-length': '1000',
    'cache-control': 'max-age=60',
  });
  // Signed but not the descriptor's length, or not canonical: refused even so.
  for (const text of ['1e3', '0x3e8', '+1000', '01000', '1000 ', '999', '']) {
    assert.throws(
      () => restoreOriginalHeaders(headers(text), descriptor, keyring),
      isBadHead,
      text,
    );
  }
});
