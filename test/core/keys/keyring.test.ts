// The key-file parser accepts exactly canonical files and refuses everything else with
// ODB_ERR_KEY_FILE; reading a key file checks what it is and who may read it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { isOdbError } from '../../../src/core/errors.js';
import {
  Keyring,
  formatKeyFile,
  generateClusterKey,
  loadKeyring,
  parseKeyFile,
  readKeyFile,
  type ClusterKey,
} from '../../../src/core/keys/keyring.js';
import { fuzzRuns } from '../../helpers/repo.js';

const isKeyFileError = (err: unknown): boolean => isOdbError(err, 'ODB_ERR_KEY_FILE');

/** A random secret that is not one repeated byte. */
const secretArb = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .filter((bytes) => bytes.some((b) => b !== bytes[0]))
  .map((bytes) => Buffer.from(bytes));

const keysArb = fc
  .uniqueArray(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 6 })
  .chain((ids) =>
    fc.tuple(...ids.map((id) => secretArb.map((secret): ClusterKey => ({ id, secret })))),
  );

function fileText(keys: readonly Record<string, unknown>[], version: unknown = 1): string {
  return JSON.stringify({ version, keys });
}

test('property: every file formatKeyFile writes parses back to the same keys, in order', () => {
  fc.assert(
    fc.property(keysArb, (keys) => {
      const ring = parseKeyFile(formatKeyFile(keys));
      assert.deepEqual(
        ring.keys.map((k) => [k.id, k.secret.toString('hex')]),
        keys.map((k) => [k.id, k.secret.toString('hex')]),
      );
      assert.equal(ring.signing.id, keys[0]!.id);
    }),
    { numRuns: fuzzRuns },
  );
});

test('property: any text is either refused with ODB_ERR_KEY_FILE or holds canonical 32-byte secrets', () => {
  const valid = formatKeyFile([generateClusterKey(), generateClusterKey()]);
  // Arbitrary text, arbitrary JSON, and a valid file with one character inserted, removed or
  // replaced anywhere.
  const edited = fc
    .tuple(fc.nat(valid.length), fc.nat(2), fc.string({ minLength: 1, maxLength: 1 }))
    .map(([at, kind, ch]) =>
      kind === 0
        ? valid.slice(0, at) + ch + valid.slice(at)
        : kind === 1
          ? valid.slice(0, at) + valid.slice(at + 1)
          : valid.slice(0, at) + ch + valid.slice(at + 1),
    );
  const textArb = fc.oneof(fc.string(), fc.json(), edited);
  fc.assert(
    fc.property(textArb, (text) => {
      let ring: Keyring;
      try {
        ring = parseKeyFile(text);
      } catch (err) {
        assert.ok(isKeyFileError(err), `not a key-file error: ${String(err)}`);
        return;
      }
      const ids = new Set<number>();
      for (const key of ring.keys) {
        assert.equal(key.secret.length, 32);
        assert.ok(text.includes(JSON.stringify(key.secret.toString('base64'))));
        assert.ok(!ids.has(key.id));
        ids.add(key.id);
      }
    }),
    { numRuns: fuzzRuns },
  );
});

test('property: a secret with a stray character anywhere is refused', () => {
  const stray = fc.string({ minLength: 1, maxLength: 3 }).filter((s) => s !== '');
  fc.assert(
    fc.property(secretArb, fc.nat(44), stray, (secret, at, extra) => {
      const text = secret.toString('base64');
      const damaged = text.slice(0, at) + extra + text.slice(at);
      fc.pre(damaged !== text);
      assert.throws(
        () => parseKeyFile(fileText([{ id: 1, secret: damaged }])),
        isKeyFileError,
        JSON.stringify(damaged),
      );
    }),
    { numRuns: fuzzRuns },
  );
});

test('secrets that are no secret, and malformed files, are refused with a reason', () => {
  const good = generateClusterKey().secret.toString('base64');
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['  \n', /empty/],
    ['{"version":1,', /not JSON/],
    ['[]', /JSON object/],
    [fileText([{ id: 1, secret: good }], 2), /version must be 1/],
    [JSON.stringify({ keys: [{ id: 1, secret: good }] }), /version/],
    [fileText([]), /non-empty list/],
    [fileText([{ id: 1, secret: Buffer.alloc(32).toString('base64') }]), /repeated byte/],
    [fileText([{ id: 1, secret: Buffer.alloc(32, 0xab).toString('base64') }]), /repeated byte/],
    [fileText([{ id: 1, secret: good.replace(/=$/, '') }]), /canonical base64/],
    [fileText([{ id: 1, secret: ` ${good}` }]), /canonical base64/],
    [fileText([{ id: 1, secret: `${good.slice(0, 10)}\n${good.slice(10)}` }]), /canonical/],
    [fileText([{ id: 1, secret: `${good.slice(0, 10)}*${good.slice(10)}` }]), /canonical/],
    [fileText([{ id: 1, secret: randomBase64(31) }]), /32 bytes/],
    [fileText([{ id: 1, secret: randomBase64(33) }]), /32 bytes/],
    [fileText([{ id: 1, secret: good.replace(/.=$/, '-=') }]), /canonical/],
    [
      fileText([
        { id: 7, secret: good },
        { id: 7, secret: generateClusterKey().secret.toString('base64') },
      ]),
      /duplicate key id 7/,
    ],
    [fileText([{ id: 70000, secret: good }]), /0\.\.65535/],
    [fileText([{ id: 1.5, secret: good }]), /integer/],
    [fileText([{ id: '1', secret: good }]), /integer/],
    [fileText([{ id: 1, secret: good, note: 'x' }]), /unknown field "note"/],
    [JSON.stringify({ version: 1, keys: [{ id: 1, secret: good }], extra: 1 }), /unknown field/],
  ];
  for (const [text, reason] of cases) {
    assert.throws(
      () => parseKeyFile(text, '--key-file k.json'),
      (err: unknown) =>
        isKeyFileError(err) &&
        reason.test((err as Error).message) &&
        (err as Error).message.includes('--key-file k.json') &&
        /odb keygen/.test((err as Error).message),
      `${JSON.stringify(text)} should be refused with ${reason}`,
    );
  }
});

function randomBase64(bytes: number): string {
  return randomBytes(bytes).toString('base64');
}

test('replace() swaps every key at once for all holders of the keyring', () => {
  const [a, b] = [generateClusterKey(), generateClusterKey()];
  const ring = new Keyring([a]);
  ring.replace(new Keyring([b, a]));
  assert.equal(ring.signing, b);
  assert.equal(ring.get(a.id), a);
  assert.throws(() => ring.replace(new Keyring([])), isKeyFileError);
  assert.equal(ring.signing, b);
});

const dir = mkdtempSync(join(tmpdir(), 'odb-keyring-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(name: string, mode: number, text = formatKeyFile([generateClusterKey()])): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

test('a key file group or others may read or write is refused, naming the setting and chmod', () => {
  for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602, 0o601]) {
    const path = keyFile(`k${mode.toString(8)}.json`, mode);
    assert.throws(
      () => loadKeyring(path, { setting: '--key-file' }),
      (err: unknown) =>
        isKeyFileError(err) &&
        (err as Error).message.includes(`--key-file ${path}`) &&
        (err as Error).message.includes(`chmod 600 ${path}`),
      mode.toString(8),
    );
  }
  for (const mode of [0o600, 0o400]) loadKeyring(keyFile(`ok${mode}.json`, mode));
});

test('missing, empty, a directory or (when asked) a link: refused with the fix', () => {
  const missing = join(dir, 'missing.json');
  assert.throws(
    () => readKeyFile(missing, { setting: 'ODB_KEY_FILE' }),
    (err: unknown) =>
      isKeyFileError(err) &&
      (err as Error).message.includes(`ODB_KEY_FILE ${missing}: no such file`) &&
      (err as Error).message.includes(`odb keygen --out ${missing}`),
  );
  const empty = keyFile('empty.json', 0o600, '');
  assert.throws(() => readKeyFile(empty), /empty/);
  const sub = join(dir, 'sub');
  mkdirSync(sub, { mode: 0o700 });
  assert.throws(() => readKeyFile(sub), /not a regular file/);
  const target = keyFile('target.json', 0o600);
  const link = join(dir, 'link.json');
  symlinkSync(target, link);
  loadKeyring(link);
  assert.throws(() => readKeyFile(link, { noFollow: true }), /symbolic link/);
});
