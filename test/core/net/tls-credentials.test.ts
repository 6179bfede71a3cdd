// The TLS pair of a listener: what the checks refuse (and how they name it), and reloads on file
// changes: a rewrite with the same bytes is no reload, a bad pair is refused once however many
// events it causes, and the good pair that follows is taken.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isOdbError } from '../../../src/core/errors.js';
import {
  TlsCredentials,
  loadTlsPair,
  type TlsPair,
} from '../../../src/core/net/tls-credentials.js';
import { workspace } from '../../helpers/fixtures.js';
import { eventually } from '../../helpers/net.js';
import { issueServerCertificate, makeTestPki } from '../../helpers/tls.js';

const ws = workspace('odb-tls-unit-');
after(() => ws.cleanup());
const pki = makeTestPki(ws.dir);
const other = issueServerCertificate(pki, 'other', 'other.test');

function refusal(files: { certFile: string; keyFile: string }): string {
  try {
    loadTlsPair(files);
  } catch (err) {
    assert.ok(isOdbError(err, 'ODB_ERR_TLS_FILE'), String(err));
    return err.message;
  }
  assert.fail('the pair was accepted');
}

test('a good pair is summarised; each bad one is refused naming the flag, the file and the fix', () => {
  const pair = loadTlsPair({ certFile: pki.cert, keyFile: pki.key });
  const x509 = new X509Certificate(readFileSync(pki.cert));
  assert.equal(pair.certificate.serialNumber, x509.serialNumber);
  assert.equal(pair.certificate.fingerprint256, x509.fingerprint256);
  assert.equal(pair.certificate.subject, 'CN=localhost');
  assert.equal(pair.certificate.notAfterMs, Date.parse(x509.validTo));

  const encrypted = join(ws.dir, 'encrypted.key');
  execFileSync(
    'openssl',
    ['pkey', '-in', pki.key, '-aes256', '-passout', 'pass:x'].concat(['-out', encrypted]),
  );
  const dir = join(ws.dir, 'a-directory');
  mkdirSync(dir);
  const cases: [{ certFile: string; keyFile: string }, RegExp][] = [
    [
      { certFile: pki.cert, keyFile: encrypted },
      /--tls-key .*encrypted\.key: the key is encrypted/,
    ],
    [{ certFile: pki.cert, keyFile: other.key }, /--tls-key .*other\.key: is not the key of/],
    [{ certFile: dir, keyFile: pki.key }, /--tls-cert .*a-directory: not a regular file/],
    [{ certFile: pki.cert, keyFile: join(ws.dir, 'absent') }, /--tls-key .*absent: no such file/],
    [{ certFile: pki.key, keyFile: pki.key }, /--tls-cert .*server\.key: holds no certificate/],
  ];
  for (const [files, reason] of cases) assert.match(refusal(files), reason);
});

test('watching: the same bytes are no reload, a bad pair is refused once, the good one is taken', async () => {
  const dir = join(ws.dir, 'watched');
  mkdirSync(dir);
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  copyFileSync(pki.cert, certFile);
  copyFileSync(pki.key, keyFile);
  chmodSync(keyFile, 0o600);
  const credentials = TlsCredentials.load({ certFile, keyFile });
  const taken: TlsPair[] = [];
  credentials.onChange((pair) => taken.push(pair));
  credentials.watch(50);
  const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 300));
  try {
    // Rewritten with the same bytes (a touch, a copy of the same file): nothing to reload.
    writeFileSync(certFile, readFileSync(pki.cert));
    await settle();
    assert.deepEqual(credentials.stats, { ok: 0, failed: 0 });
    // A key written before its certificate: refused, however often the bad pair is written.
    copyFileSync(other.key, keyFile);
    await eventually(() => credentials.stats.failed === 1, 5000, 'the refusal');
    copyFileSync(other.key, keyFile);
    await settle();
    assert.equal(credentials.stats.failed, 1, 'the same bad bytes are not tried again');
    assert.equal(credentials.pair.certificate.subject, 'CN=localhost', 'the old pair serves on');
    // Its certificate arrives: the pair agrees and is taken.
    copyFileSync(other.cert, certFile);
    await eventually(() => credentials.stats.ok === 1, 5000, 'the reload');
    assert.equal(credentials.pair.certificate.subject, 'CN=other.test');
    assert.deepEqual(
      taken.map((p) => p.certificate.subject),
      ['CN=other.test'],
    );
  } finally {
    credentials.close();
  }
});
