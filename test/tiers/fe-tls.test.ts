// HTTPS at the front end: real `odb be`, `odb is` and `odb fe --tls-cert/--tls-key` processes.
// curl and Node's https, both verifying against a test CA, get exact bytes of 1 MiB and 16 MiB
// descriptor responses, which take the JavaScript path (counted and logged once as `tls`); plain
// HTTP to the TLS port is refused and the FE serves on; a handshake that never comes and a client
// that stops reading are cut; SIGHUP and a change of the files reload the certificate for new
// connections while an open one continues; a broken pair on reload keeps the old one; a half pair
// or a bad one at start is a one-line exit 2; SIGTERM lets a TLS response in flight finish.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, Agent, type AgentOptions } from 'node:https';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect as connectTls, type PeerCertificate, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { odbBin, startOdbProcess, type LogLine } from '../../src/demo/tier-process.js';
import { transferEngine } from '../../src/native/transfer.js';
import { odbChainForFile } from '../helpers/chain.js';
import { workspace } from '../helpers/fixtures.js';
import { get } from '../helpers/http.js';
import { eventually, sha256 } from '../helpers/net.js';
import { issueServerCertificate, makeTestPki, type TestPki } from '../helpers/tls.js';

const run = promisify(execFile);
const engine = 'engine' in transferEngine(true);

// The FE serves copies of the test PKI's files, in a directory of their own, which tests replace.
const tlsWs = workspace('odb-tls-');
after(() => tlsWs.cleanup());
const tlsDir = (): string => tlsWs.dir;
const pki: TestPki = makeTestPki(tlsDir());
const feCert = (): string => join(tlsDir(), 'fe.crt');
const feKey = (): string => join(tlsDir(), 'fe.key');
copyFileSync(pki.cert, feCert());
copyFileSync(pki.key, feKey());
const shared = odbChainForFile({
  logLevel: 'info',
  // Short enough to watch the handshake deadline and the send watchdog at work.
  feArgs: ['--tls-cert', feCert(), '--tls-key', feKey(), '--header-timeout', '2s'].concat([
    '--send-timeout',
    '2s',
  ]),
});
const ca = (): Buffer => readFileSync(pki.ca);
const fePort = (): number => Number(shared.chain.fe.addresses.http!.split(':').pop());
const url = (path: string): string => `https://127.0.0.1:${fePort()}${path}`;

// Bodies the BE serves from files (odb mode: descriptors, delivered from its store).
const mib = 'one-mib.bin';
const sixteen = 'sixteen-mib.bin';
const sizes: Record<string, number> = { [mib]: 1 << 20, [sixteen]: 16 << 20 };
const shas: Record<string, string> = {};
for (const [name, size] of Object.entries(sizes))
  shas[name] = sha256(readFileSync(shared.ws.file(name, size)));

/** What Node's https client saw of one response. */
interface HttpsReceived {
  readonly status: number;
  readonly bytes: number;
  readonly sha256: string;
  readonly peer: PeerCertificate;
  readonly reusedSocket: boolean;
}

function httpsGet(path: string, agent: Agent | false = false): Promise<HttpsReceived> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url(path), { ca: ca(), agent });
    req.on('error', reject);
    req.on('response', (res) => {
      const socket = res.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          bytes,
          sha256: hash.digest('hex'),
          peer,
          reusedSocket: req.reusedSocket,
        }),
      );
    });
    req.end();
  });
}

/** curl --cacert: status, HTTP version and the body's hash. */
async function curl(path: string): Promise<{ status: number; version: string; sha256: string }> {
  const out = join(shared.ws.dir, 'curl.out');
  const { stdout } = await run(
    'curl',
    ['-sS', '--cacert', pki.ca, '-o', out].concat([
      '-w',
      '%{http_code} %{http_version}',
      url(path),
    ]),
  );
  const [status, version] = stdout.split(' ');
  return { status: Number(status), version: version!, sha256: sha256(readFileSync(out)) };
}

/**
 * The certificate a new TLS connection to the FE presents (verified against the test CA); the
 * client offers h2 first, the FE must choose http/1.1.
 */
function presented(): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const options = {
      host: '127.0.0.1',
      port: fePort(),
      ca: ca(),
      ALPNProtocols: ['h2', 'http/1.1'],
    };
    const socket = connectTls(options, () => {
      if (socket.alpnProtocol !== 'http/1.1')
        reject(new Error(`ALPN chose ${socket.alpnProtocol}`));
      resolve(socket.getPeerCertificate());
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** What `ss` lists of the FE's end of the connection from `clientPort` ('' when it is gone). */
async function serverEndOf(clientPort: number): Promise<string> {
  const filter = ['src', `127.0.0.1:${fePort()}`, 'dst', `127.0.0.1:${clientPort}`];
  const { stdout } = await run('ss', ['-tnH', 'state', 'all', ...filter]);
  return stdout.trim();
}

const fingerprintOf = (certFile: string): string =>
  new X509Certificate(readFileSync(certFile)).fingerprint256;

async function feMetric(name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await scrape(shared.chain.fe.addresses.metrics!), name, labels);
}

/** Sends SIGHUP to the FE and waits for the first line after it that `match` accepts. */
async function hup(match: (line: LogLine) => boolean): Promise<LogLine> {
  const fe = shared.chain.fe;
  const seen = fe.logs.length;
  fe.child.kill('SIGHUP');
  let found: LogLine | undefined;
  await eventually(
    () => (found = fe.logs.slice(seen).find(match)) !== undefined,
    10_000,
    'the FE to log its reload',
  );
  return found!;
}

const reloaded = (trigger: string) => (line: LogLine) =>
  line.msg === 'TLS certificate reloaded: new connections get it' && line.trigger === trigger;

test('curl and Node https get exact bytes of 1 MiB and 16 MiB through FE(TLS) → IS → BE, by the JavaScript path (reason tls, logged once)', async () => {
  const reason = engine ? 'tls' : 'unavailable';
  const before = {
    javascript: await feMetric('odb_deliveries_total', { path: 'javascript', reason }),
    kernel: await feMetric('odb_deliveries_total', { path: 'kernel' }),
    shortcuts: await feMetric('odb_descriptor_responses_total'),
  };
  for (const name of [mib, sixteen]) {
    const viaCurl = await curl(`/${name}`);
    assert.deepEqual(viaCurl, { status: 200, version: '1.1', sha256: shas[name] }, `curl ${name}`);
    const viaNode = await httpsGet(`/${name}`);
    assert.equal(viaNode.status, 200);
    assert.equal(viaNode.sha256, shas[name], `https ${name}`);
    assert.equal(viaNode.peer.fingerprint256, fingerprintOf(pki.cert));
  }
  // Every body came from the store through a descriptor, none spliced: TLS is encrypted in Node.
  const delivered = 4;
  assert.equal(
    (await feMetric('odb_descriptor_responses_total')) - before.shortcuts,
    delivered,
    'each delivered through a descriptor',
  );
  assert.equal(
    (await feMetric('odb_deliveries_total', { path: 'javascript', reason })) - before.javascript,
    delivered,
    `each counted as odb_deliveries_total{path="javascript",reason="${reason}"}`,
  );
  assert.equal((await feMetric('odb_deliveries_total', { path: 'kernel' })) - before.kernel, 0);
  const lines = shared.chain.fe.logs.filter(
    (l) => l.msg === 'descriptor bodies delivered by JavaScript, not splice' && l.reason === reason,
  );
  assert.equal(lines.length, 1, 'the reason is logged once');
});

test('plain HTTP to the TLS port is refused (no HTTP answer, connection closed); the FE serves on', async () => {
  const failedBefore = await feMetric('odb_tls_handshake_failures_total', { reason: 'failed' });
  // A raw HTTP request: no byte of an HTTP response comes back, the connection is closed.
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const socket = connectTcp(fePort(), '127.0.0.1');
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.on('error', () => {}); // a reset is as good as a close here
    socket.on('close', () => resolve(Buffer.concat(parts)));
    socket.write('GET /one-mib.bin HTTP/1.1\r\nhost: localhost\r\n\r\n');
    setTimeout(() => reject(new Error('the FE kept a plain-HTTP connection open')), 5000).unref();
  });
  assert.ok(!reply.toString('latin1').startsWith('HTTP/'), `got ${reply.toString('latin1')}`);
  // Node's http client fails the same way.
  await assert.rejects(get(`http://127.0.0.1:${fePort()}/one-mib.bin`));
  assert.ok(
    (await feMetric('odb_tls_handshake_failures_total', { reason: 'failed' })) >= failedBefore + 2,
    'counted as failed handshakes',
  );
  const after = await httpsGet(`/${mib}`);
  assert.equal(after.sha256, shas[mib]);
});

test('a connection that never starts its handshake is closed after --header-timeout, counted', async () => {
  const before = await feMetric('odb_tls_handshake_failures_total', { reason: 'timeout' });
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const socket = connectTcp(fePort(), '127.0.0.1');
    socket.on('error', () => {});
    socket.on('close', () => resolve());
    setTimeout(() => reject(new Error('a silent connection was kept open')), 8000).unref();
  });
  const took = Date.now() - started;
  assert.ok(took >= 1500 && took < 6000, `closed after ${took} ms (--header-timeout 2s)`);
  assert.equal(
    await feMetric('odb_tls_handshake_failures_total', { reason: 'timeout' }),
    before + 1,
  );
});

test('a TLS client that stops reading is cut by the send watchdog', async () => {
  // Larger than every buffer on the way (kernel send and receive buffers take several MiB).
  const total = 64 << 20;
  const before = await feMetric('odb_send_timeouts_total');
  let received = 0;
  const socket = connectTls({ host: '127.0.0.1', port: fePort(), ca: ca() });
  socket.on('error', () => {}); // the cut is a reset
  socket.on('data', (d: Buffer) => (received += d.length));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.write(`GET /bytes/${total} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
  // Take a little, then nothing: a paused client does not even read the reset, so the FE's
  // counter says when it was cut.
  await eventually(() => received > 0, 10_000, 'the first bytes');
  socket.pause();
  const started = Date.now();
  await eventually(
    async () => (await feMetric('odb_send_timeouts_total')) === before + 1,
    12_000,
    'the FE to cut the stalled client',
  );
  const took = Date.now() - started;
  assert.ok(took >= 1000, `cut after ${took} ms, before --send-timeout 2s`);
  // Reset, not closed: a close would leave the FE's end in the kernel (FIN-WAIT-1), still
  // offering its unsent bytes to a client that reads nothing.
  const feEnd = await serverEndOf(socket.localPort!);
  assert.equal(feEnd, '', `the FE's end of the connection is still there: ${feEnd}`);
  socket.resume();
  await closed;
  assert.ok(received < total, `the client got ${received} of ${total} bytes`);
});

test('SIGHUP reloads the certificate: new connections present the new one, an open connection continues', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca() } as AgentOptions);
  try {
    const first = await httpsGet(`/${mib}`, agent);
    assert.equal(first.peer.fingerprint256, fingerprintOf(pki.cert));
    const second = issueServerCertificate(pki, 'second', 'odb-second.test');
    const secondCert = new X509Certificate(readFileSync(second.cert));
    assert.notEqual(
      secondCert.serialNumber,
      new X509Certificate(readFileSync(pki.cert)).serialNumber,
    );
    copyFileSync(second.key, feKey());
    copyFileSync(second.cert, feCert());
    const line = await hup(reloaded('SIGHUP'));
    assert.equal(line.serialNumber, secondCert.serialNumber);
    const now = await presented();
    assert.equal(now.serialNumber, secondCert.serialNumber);
    assert.equal(now.fingerprint256, secondCert.fingerprint256);
    assert.equal(now.subject.CN, 'odb-second.test');
    // The keep-alive connection opened before the reload serves on, with the old certificate.
    const onOld = await httpsGet(`/${mib}`, agent);
    assert.ok(onOld.reusedSocket, 'the same connection');
    assert.equal(onOld.sha256, shas[mib]);
    assert.equal(onOld.peer.fingerprint256, fingerprintOf(pki.cert));
    // And new clients get right bytes under the new one.
    assert.equal((await curl(`/${sixteen}`)).sha256, shas[sixteen]);
  } finally {
    agent.destroy();
  }
});

test('a change of the files alone reloads the certificate (no signal)', async () => {
  const third = issueServerCertificate(pki, 'third', 'odb-third.test');
  const fe = shared.chain.fe;
  const seen = fe.logs.length;
  copyFileSync(third.key, feKey());
  copyFileSync(third.cert, feCert());
  await eventually(
    () => fe.logs.slice(seen).some(reloaded('file-change')),
    10_000,
    'the FE to reload on the file change',
  );
  assert.equal((await presented()).fingerprint256, fingerprintOf(third.cert));
});

test('a broken pair on reload is refused: the certificate in use keeps serving', async () => {
  const inUse = fingerprintOf(feCert());
  const failedBefore = await feMetric('odb_tls_reloads_total', { result: 'failed' });
  const refused = (line: LogLine): boolean =>
    line.msg === 'TLS certificate reload failed; keeping the certificate in use' &&
    line.trigger === 'SIGHUP';
  // A key that is not the certificate's, then a certificate file that is not PEM.
  copyFileSync(pki.key, feKey());
  const mismatch = await hup(refused);
  assert.match(String(mismatch.err), /--tls-key .* is not the key of the certificate/);
  copyFileSync(join(tlsDir(), 'third.key'), feKey());
  writeFileSync(feCert(), 'not a certificate\n');
  const garbage = await hup(refused);
  assert.match(String(garbage.err), /--tls-cert .*: not PEM/);
  assert.equal((await presented()).fingerprint256, inUse);
  const res = await httpsGet(`/${mib}`);
  assert.equal(res.sha256, shas[mib]);
  assert.ok((await feMetric('odb_tls_reloads_total', { result: 'failed' })) >= failedBefore + 2);
  assert.equal(shared.chain.fe.child.exitCode, null, 'the FE is alive');
});

test('--tls-cert without --tls-key, or a bad pair, at start: one line, exit 2; a config file sets both', async () => {
  const odb = async (...args: string[]): Promise<{ code: number; stderr: string }> => {
    try {
      await run(process.execPath, [odbBin, ...args], { timeout: 20_000 });
      return { code: 0, stderr: '' };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, stderr: e.stderr };
    }
  };
  const base = [
    'fe',
    '--mode',
    'vanilla',
    '--upstream',
    'http://127.0.0.1:9',
    '--listen',
    '127.0.0.1:0',
  ];
  const config = join(tlsDir(), 'half.json');
  writeFileSync(config, JSON.stringify({ tlsKey: pki.key }));
  const cases: [string[], RegExp][] = [
    [['--tls-cert', pki.cert], /--tls-cert needs --tls-key.*\[ODB_ERR_INVALID_OPTION\]$/],
    [['--config', config], /--tls-key needs --tls-cert.*\[ODB_ERR_INVALID_OPTION\]$/],
    [
      ['--tls-cert', pki.cert, '--tls-key', join(tlsDir(), 'second.key')],
      /--tls-key .*second\.key: is not the key of the certificate.*\[ODB_ERR_TLS_FILE\]$/,
    ],
    [
      ['--tls-cert', join(tlsDir(), 'absent.crt'), '--tls-key', pki.key],
      /--tls-cert .*absent\.crt: no such file \[ODB_ERR_TLS_FILE\]$/,
    ],
  ];
  await Promise.all(
    cases.map(async ([args, reason]) => {
      const r = await odb(...base, ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, reason);
    }),
  );
  // Both from the config file: the listener is HTTPS.
  const both = join(tlsDir(), 'both.json');
  writeFileSync(both, JSON.stringify({ tlsCert: pki.cert, tlsKey: pki.key, logLevel: 'warn' }));
  const fe = await startOdbProcess('fe-config', [...base, '--config', both]);
  try {
    const port = Number(fe.addresses.http!.split(':').pop());
    const peer = await new Promise<PeerCertificate>((resolve, reject) => {
      const socket = connectTls({ host: '127.0.0.1', port, ca: ca() }, () => {
        resolve(socket.getPeerCertificate());
        socket.end();
      });
      socket.on('error', reject);
    });
    assert.equal(peer.fingerprint256, fingerprintOf(pki.cert));
  } finally {
    await fe.stop();
  }
});

test('SIGTERM: a TLS response in flight finishes byte-exact, the FE exits 0', async () => {
  const name = sixteen;
  const fe = shared.chain.fe;
  const exited = new Promise<number | null>((resolve) =>
    fe.child.once('exit', (code) => resolve(code)),
  );
  const res = await new Promise<HttpsReceived>((resolve, reject) => {
    const req = httpsRequest(url(`/${name}`), { ca: ca(), agent: false });
    req.on('error', reject);
    req.on('response', (response) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let first = true;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        if (!first) return;
        first = false;
        fe.child.kill('SIGTERM');
        response.pause();
        setTimeout(() => response.resume(), 500);
      });
      response.on('error', reject);
      response.on('end', () =>
        resolve({
          status: response.statusCode!,
          bytes,
          sha256: hash.digest('hex'),
          peer: {} as PeerCertificate,
          reusedSocket: false,
        }),
      );
    });
    req.end();
  });
  assert.equal(res.status, 200);
  assert.equal(res.bytes, sizes[sixteen]);
  assert.equal(res.sha256, shas[name]);
  assert.equal(await exited, 0);
});
