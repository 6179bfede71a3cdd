// A test certificate authority and a server certificate it signed (localhost, 127.0.0.1), made
// with openssl for each test run: real TLS, verified by clients against the test CA.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  /** PEM files: the CA's certificate, the server's key and certificate. */
  readonly ca: string;
  readonly key: string;
  readonly cert: string;
}

export function makeTestPki(dir: string): TestPki {
  const path = (name: string): string => join(dir, name);
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  };
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
    ].concat(['-keyout', path('ca.key'), '-out', path('ca.crt')]),
  );
  openssl(
    ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost'].concat([
      '-keyout',
      path('server.key'),
      '-out',
      path('server.csr'),
    ]),
  );
  const extensions = path('server.ext');
  writeFileSync(extensions, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      path('server.csr'),
      '-CA',
      path('ca.crt'),
      '-CAkey',
      path('ca.key'),
    ].concat(['-CAcreateserial', '-days', '2', '-extfile', extensions, '-out', path('server.crt')]),
  );
  return { ca: path('ca.crt'), key: path('server.key'), cert: path('server.crt') };
}
