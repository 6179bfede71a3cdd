// A test certificate authority and a server certificate it signed (localhost, 127.0.0.1), made
// with openssl for each test run: real TLS, verified by clients against the test CA. More server
// certificates of the same CA (another subject, another serial) with `issueServerCertificate`.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  /** PEM files: the CA's certificate, the server's key and certificate. */
  readonly ca: string;
  readonly key: string;
  readonly cert: string;
  /** The directory the files are in (the CA's key and serial file too). */
  readonly dir: string;
}

const openssl = (args: string[]): void => {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

export function makeTestPki(dir: string): TestPki {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=ODB test CA',
    ].concat(['-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt')]),
  );
  const ca = join(dir, 'ca.crt');
  return { ca, dir, ...issueServerCertificate({ ca, dir }, 'server', 'localhost') };
}

/**
 * A new key and a certificate for localhost and 127.0.0.1 signed by the test CA, with subject
 * `CN=<commonName>` and the CA's next serial: `<name>.key`, `<name>.crt` in the PKI's directory.
 */
export function issueServerCertificate(
  pki: Pick<TestPki, 'ca' | 'dir'>,
  name: string,
  commonName: string,
): { key: string; cert: string } {
  const path = (file: string): string => join(pki.dir, file);
  openssl(
    ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${commonName}`].concat([
      '-keyout',
      path(`${name}.key`),
      '-out',
      path(`${name}.csr`),
    ]),
  );
  const extensions = path(`${name}.ext`);
  writeFileSync(extensions, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    ['x509', '-req', '-in', path(`${name}.csr`), '-CA', pki.ca, '-CAkey', path('ca.key')].concat([
      '-CAserial',
      path('ca.srl'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      extensions,
      '-out',
      path(`${name}.crt`),
    ]),
  );
  return { key: path(`${name}.key`), cert: path(`${name}.crt`) };
}
