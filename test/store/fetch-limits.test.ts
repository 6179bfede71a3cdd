// Concurrent-fetch limits of a buffer store: in all, per payload, per peer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isOdbError } from '../../src/core/errors.js';
import { FetchAdmission, peerAddress } from '../../src/store/fetch-limits.js';

const busy = (e: unknown): boolean => isOdbError(e, 'ODB_ERR_BUSY');

test('fetch limits: each limit refuses with ODB_ERR_BUSY, is counted, and frees with its fetch', () => {
  const admission = new FetchAdmission({
    maxFetches: 5,
    maxFetchesPerPayload: 2,
    maxFetchesPerPeer: 3,
  });
  const a1 = admission.admit('a', 'p1');
  admission.admit('a', 'p2');
  assert.throws(() => admission.admit('a', 'p3'), busy); // payload a is at 2
  admission.admit('b', 'p1');
  const c1 = admission.admit('c', 'p1');
  assert.throws(() => admission.admit('d', 'p1'), busy); // peer p1 is at 3
  admission.admit('d', 'p2');
  assert.throws(() => admission.admit('e', 'p4'), busy); // 5 in flight
  assert.deepEqual(admission.refused, { total: 1, payload: 1, peer: 1 });
  assert.equal(admission.inFlight, 5);
  a1();
  a1(); // idempotent
  assert.equal(admission.inFlight, 4);
  admission.admit('a', 'p3'); // payload a and the total have room again
  c1();
  admission.admit('e', 'p1'); // so has peer p1
  assert.equal(admission.inFlight, 5);
});

test('fetch limits: defaults leave room for stream-mode holders and front-end pools', () => {
  const { limits } = new FetchAdmission({ maxFetchesPerPeer: undefined });
  assert.deepEqual(limits, { maxFetches: 4096, maxFetchesPerPayload: 64, maxFetchesPerPeer: 1024 });
});

test('fetch limits: an IPv4-mapped IPv6 peer is the same peer as its IPv4 address', () => {
  assert.equal(peerAddress('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(peerAddress('10.0.0.1'), '10.0.0.1');
  assert.equal(peerAddress('fe80::1'), 'fe80::1');
  assert.equal(peerAddress(undefined), 'unknown');
});
