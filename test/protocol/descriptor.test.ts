import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isOdbError, OdbError } from '../../src/core/errors.js';
import { generateClusterKey, Keyring } from '../../src/core/keys/keyring.js';
import {
  decodeDescriptor,
  deriveDescriptor,
  descriptorFromText,
  descriptorToText,
  maxDescriptorBytes,
  signDescriptor,
  verifyDescriptor,
  type DescriptorFields,
} from '../../src/protocol/descriptor.js';
import { fuzzRuns } from '../helpers/repo.js';

const key = generateClusterKey();
const keyring = new Keyring([key]);
const base: Omit<DescriptorFields, 'keyId'> = {
  endpoint: '127.0.0.1:9000',
  payloadId: Buffer.alloc(16, 7),
  offset: 0,
  length: 1000,
  totalSize: 1000,
  expiresAt: 2_000_000_000_000,
  open: false,
};

function expectCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => isOdbError(err) && err.code === code);
}

test('a tampered byte anywhere fails the MAC or the decoder, never verifies', () => {
  const d = signDescriptor(base, key);
  for (let i = 0; i < d.bytes.length; i++) {
    const bytes = Buffer.from(d.bytes);
    bytes[i]! ^= 0x01;
    assert.throws(
      () => verifyDescriptor(decodeDescriptor(bytes), keyring, 0),
      OdbError,
      `byte ${i}`,
    );
  }
});

test('unknown key id, bad MAC and expiry have their own codes', () => {
  const other = generateClusterKey();
  const foreign = signDescriptor(base, { ...other, id: (key.id + 1) % 0x10000 });
  expectCode(() => verifyDescriptor(foreign, keyring, 0), 'ODB_ERR_UNKNOWN_KEY');
  const sameIdOtherSecret = signDescriptor(base, { id: key.id, secret: other.secret });
  expectCode(() => verifyDescriptor(sameIdOtherSecret, keyring, 0), 'ODB_ERR_BAD_MAC');
  const d = signDescriptor(base, key);
  verifyDescriptor(d, keyring, base.expiresAt);
  expectCode(() => verifyDescriptor(d, keyring, base.expiresAt + 1), 'ODB_ERR_EXPIRED');
});

test('field rules are enforced at signing and decoding', () => {
  expectCode(() => signDescriptor({ ...base, endpoint: 'no-port' }, key), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(() => signDescriptor({ ...base, endpoint: 'h:0' }, key), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(() => signDescriptor({ ...base, offset: 1 }, key), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(() => signDescriptor({ ...base, open: true }, key), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(
    () => signDescriptor({ ...base, payloadId: Buffer.alloc(8) }, key),
    'ODB_ERR_BAD_DESCRIPTOR',
  );
  const d = signDescriptor(base, key);
  const unknownFlag = Buffer.from(d.bytes);
  unknownFlag[1] = 0x02;
  expectCode(() => decodeDescriptor(unknownFlag), 'ODB_ERR_BAD_DESCRIPTOR');
  const version2 = Buffer.from(d.bytes);
  version2[0] = 2;
  expectCode(() => decodeDescriptor(version2), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(
    () => decodeDescriptor(d.bytes.subarray(0, d.bytes.length - 1)),
    'ODB_ERR_BAD_DESCRIPTOR',
  );
  expectCode(
    () => decodeDescriptor(Buffer.concat([d.bytes, Buffer.alloc(1)])),
    'ODB_ERR_BAD_DESCRIPTOR',
  );
});

test('text form is strict base64url', () => {
  const text = descriptorToText(signDescriptor(base, key));
  assert.equal(descriptorFromText(text).bytes.toString('base64url'), text);
  expectCode(() => descriptorFromText(text + '='), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(() => descriptorFromText(text.replace(/.$/, '!')), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(() => descriptorFromText('A'.repeat(10_000)), 'ODB_ERR_BAD_DESCRIPTOR');
  expectCode(() => descriptorFromText(''), 'ODB_ERR_BAD_DESCRIPTOR');
});

test('derivation narrows within the range only, and re-signs', () => {
  const d = signDescriptor({ ...base, offset: 100, length: 500 }, key);
  const sub = deriveDescriptor(d, key, 50, 100);
  assert.equal(sub.offset, 150);
  assert.equal(sub.length, 100);
  verifyDescriptor(sub, keyring, 0);
  assert.equal(deriveDescriptor(d, key, 500, 0).length, 0);
  expectCode(() => deriveDescriptor(d, key, 450, 51), 'ODB_ERR_OUT_OF_RANGE');
  expectCode(() => deriveDescriptor(d, key, -1, 1), 'ODB_ERR_OUT_OF_RANGE');
  const open = signDescriptor({ ...base, length: 0, totalSize: 0, open: true }, key);
  expectCode(() => deriveDescriptor(open, key, 0, 0), 'ODB_ERR_BAD_DESCRIPTOR');
});

const fields = fc.record({
  host: fc.constantFrom('a', '127.0.0.1', 'store.example', '[::1]', '[fd00::1:2]'),
  port: fc.integer({ min: 1, max: 65535 }),
  payloadId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  totalSize: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  a: fc.double({ min: 0, max: 1, noNaN: true }),
  b: fc.double({ min: 0, max: 1, noNaN: true }),
  expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  open: fc.boolean(),
});

test('property: sign → text → parse → verify round-trips every valid descriptor', () => {
  fc.assert(
    fc.property(fields, (f) => {
      const offset = Math.floor(f.a * f.totalSize);
      const length = f.open ? 0 : Math.floor(f.b * (f.totalSize - offset));
      const d = signDescriptor(
        {
          endpoint: `${f.host}:${f.port}`,
          payloadId: Buffer.from(f.payloadId),
          offset,
          length,
          totalSize: f.open ? 0 : f.totalSize,
          expiresAt: f.expiresAt,
          open: f.open,
        },
        key,
      );
      const back = descriptorFromText(descriptorToText(d));
      verifyDescriptor(back, keyring, 0);
      assert.deepEqual(back, d);
    }),
    { numRuns: fuzzRuns },
  );
});

test('property: the decoder rejects arbitrary bytes with an OdbError, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: maxDescriptorBytes + 8 }), (bytes) => {
      try {
        verifyDescriptor(decodeDescriptor(Buffer.from(bytes)), keyring, 0);
        return false; // a random string verifying would be a forgery
      } catch (err) {
        return isOdbError(err);
      }
    }),
    { numRuns: fuzzRuns },
  );
});

test('property: mutating a valid descriptor never yields one that verifies', () => {
  const d = signDescriptor(base, key);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: d.bytes.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (at, flip) => {
        const bytes = Buffer.from(d.bytes);
        bytes[at]! ^= flip;
        try {
          verifyDescriptor(decodeDescriptor(bytes), keyring, 0);
          return false;
        } catch (err) {
          return isOdbError(err);
        }
      },
    ),
    { numRuns: fuzzRuns },
  );
});
