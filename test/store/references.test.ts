import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { generateClusterKey, Keyring } from '../../src/core/keys/keyring.js';
import { deriveDescriptor, payloadIdHex, signDescriptor } from '../../src/protocol/descriptor.js';
import { MemoryPayload } from '../../src/store/payloads/memory.js';
import { lineReader } from '../../src/store/reference-channel.js';
import { ReferenceLedger, referenceToken } from '../../src/store/references.js';
import { CountedStore } from '../../src/store/counted-store.js';
import { fuzzRuns } from '../helpers/repo.js';

const keyring = new Keyring([generateClusterKey()]);

/**
 * A chain of holders: holder 0 got the owner's descriptor; each holder i > 0 got token i from
 * holder i − 1, which retained it before forwarding. Every holder releases its token when done,
 * and holder i − 1 releases only after it forwarded (its retain was queued first), but messages
 * of different holders reach the owner in any order.
 */
test('reference ledger: whatever order the owner sees, the count reaches 0 only at the very end', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
      (holders, choices) => {
        const ledger = new ReferenceLedger();
        ledger.retain('t0');
        // Per holder, its own messages in the order it sends them (one connection to the owner).
        const queues: string[][] = [];
        for (let i = 0; i < holders; i++) {
          const q = i + 1 < holders ? [`retain t${i + 1}`] : [];
          q.push(`release t${i}`);
          queues.push(q);
        }
        let step = 0;
        let delivered = 0;
        const total = queues.reduce((n, q) => n + q.length, 0);
        while (delivered < total) {
          const open = queues.filter((q) => q.length > 0);
          const q = open[choices[step++ % choices.length]! % open.length]!;
          const [verb, token] = q.shift()!.split(' ') as ['retain' | 'release', string];
          if (verb === 'retain') ledger.retain(token);
          else ledger.release(token);
          delivered++;
          if (delivered < total)
            assert.ok(ledger.count > 0, 'dropped while a holder still needs it');
        }
        assert.equal(ledger.count, 0);
        assert.equal(ledger.earlyReleases, 0);
      },
    ),
    { numRuns: fuzzRuns },
  );
});

function adoptable(store: CountedStore, size: number) {
  const descriptor = signDescriptor(
    {
      endpoint: '127.0.0.1:1',
      payloadId: Buffer.alloc(16, size),
      offset: 0,
      length: size,
      totalSize: size,
      expiresAt: Date.now() + 60_000,
      open: false,
    },
    keyring.signing,
  );
  const payload = new MemoryPayload({ expectedSize: size });
  payload.append(Buffer.alloc(size, 7));
  payload.finish();
  return {
    descriptor,
    id: payloadIdHex(descriptor),
    adopt: () => store.adopt(descriptor, payload, size),
  };
}

test('store: a counted payload stays while any reference is held, even if a release overtakes its retain', () => {
  const store = new CountedStore({ keyring });
  store.advertise('127.0.0.1:1');
  const { descriptor, id, adopt } = adoptable(store, 10);
  assert.ok(adopt());
  const forwarded = deriveDescriptor(descriptor, keyring.signing, 2, 4);
  // The next holder's release reaches the owner before the forwarder's retain.
  assert.ok(store.releaseReference(id, referenceToken(forwarded.bytes)));
  assert.ok(store.has(id), 'the first holder still holds it');
  assert.ok(store.retainReference(id, referenceToken(forwarded.bytes)));
  assert.ok(store.has(id));
  assert.ok(store.releaseReference(id, referenceToken(descriptor.bytes)));
  assert.equal(store.has(id), false);
  assert.equal(store.stats.released, 1);
  // An uncounted release does not touch counted entries.
  const other = adoptable(store, 11);
  other.adopt();
  assert.equal(store.release(other.id), false);
  assert.ok(store.has(other.id));
  store.close();
});

test('store: references that reach the store before their payload are applied when it arrives', () => {
  const store = new CountedStore({ keyring });
  store.advertise('127.0.0.1:1');
  const done = adoptable(store, 12);
  assert.equal(store.releaseReference(done.id, referenceToken(done.descriptor.bytes)), false);
  assert.ok(done.adopt());
  assert.equal(store.has(done.id), false, 'its only holder was already done');
  const held = adoptable(store, 13);
  const next = deriveDescriptor(held.descriptor, keyring.signing, 0, 13);
  store.retainReference(held.id, referenceToken(next.bytes));
  store.releaseReference(held.id, referenceToken(held.descriptor.bytes));
  assert.ok(held.adopt());
  assert.ok(store.has(held.id), 'the forwarded reference is still held');
  store.releaseReference(held.id, referenceToken(next.bytes));
  assert.equal(store.has(held.id), false);
  assert.equal(store.stats.chargedBytes, 0);
  store.close();
});

test('reference channel lines: any split of the stream yields the same lines; over-long ones stop it', () => {
  const lineArb = fc.stringMatching(/^[A-Za-z0-9_ -]{0,40}$/);
  fc.assert(
    fc.property(
      fc.array(lineArb, { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (lines, cuts) => {
        const stream = Buffer.from(lines.map((l) => l + '\n').join(''), 'latin1');
        const got: string[] = [];
        let overflows = 0;
        const read = lineReader(
          (l) => got.push(l),
          () => overflows++,
          40,
        );
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        let at = 0;
        for (const p of [...points, stream.length]) {
          read(stream.subarray(at, p));
          at = p;
        }
        assert.deepEqual(
          got,
          lines.filter((l) => l !== ''),
        );
        assert.equal(overflows, 0);
      },
    ),
    { numRuns: Math.min(fuzzRuns, 500) },
  );
  let overflows = 0;
  const got: string[] = [];
  const read = lineReader(
    (l) => got.push(l),
    () => overflows++,
    8,
  );
  read(Buffer.from('short\nmuch too long'));
  read(Buffer.from(' still\nnext\n'));
  assert.deepEqual(got, ['short']);
  assert.equal(overflows, 1);
});
