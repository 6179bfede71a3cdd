/**
 * The open-source test suites of the transparency run: which package, which version, which of
 * its test files and how its own runner is called. Only the npm registry is reachable here, so
 * each suite is a package whose tarball ships its tests; what a tarball leaves out (TLS fixtures)
 * is generated before the run, never copied into this project.
 */

/** A file the tests read that the tarball does not ship, and the command that makes it. */
export interface Fixture {
  /** Relative to the unpacked package; the command is skipped when it exists. */
  readonly path: string;
  /** argv, run in the package directory. */
  readonly command: readonly string[];
}

/** One suite: a package's own tests, run by its own runner with a TAP reporter. */
export interface SuiteSpec {
  /** Short name used in options and reports. */
  readonly name: string;
  readonly pkg: string;
  /** The version tested (npm pack pkg@version). */
  readonly version: string;
  /** What of the layer it exercises. */
  readonly exercises: string;
  /** Test files, relative to the package; `*` matches within one path segment. */
  readonly files: readonly string[];
  /** The runner's argv before the files; must print TAP on stdout. */
  readonly runner: readonly string[];
  /**
   * One runner per file: node --test's TAP names no file for a passing test, so the file comes
   * from the run (a test's id must not depend on which other file has a test of the same name).
   */
  readonly perFile?: boolean;
  /** Extra environment the suite's own test script sets. */
  readonly env?: Readonly<Record<string, string>>;
  /** Node flags the suite needs on this Node version (go into NODE_OPTIONS). */
  readonly nodeOptions?: readonly string[];
  readonly fixtures?: readonly Fixture[];
  /** The ports its tests listen on, if fixed (for configuration c, explicit port lists). */
  readonly fixedPorts?: readonly number[];
  /** Why files or steps of the suite's own test script are left out. */
  readonly notes?: readonly string[];
}

/** A self-signed certificate for `name`, written as key and cert PEM files. */
function selfSigned(keyPath: string, certPath: string, name: string): Fixture[] {
  const command = [
    'openssl',
    'req',
    '-x509',
    '-nodes',
    '-days',
    '3650',
    '-newkey',
    'rsa:2048',
    '-subj',
    `/CN=${name}`,
    '-addext',
    `subjectAltName=DNS:${name}`,
    '-keyout',
    keyPath,
    '-out',
    certPath,
  ];
  return [
    { path: keyPath, command },
    { path: certPath, command },
  ];
}

// Node's own runner: TAP, and a per-test timeout so that one hung test cannot use up the suite's.
const nodeTest = ['node', '--test', '--test-reporter=tap', '--test-timeout=30000'];

export const suites: readonly SuiteSpec[] = [
  // Quick suites first, so that a first look at the results comes early.
  {
    name: 'hpagent',
    pkg: 'hpagent',
    version: '1.2.0',
    exercises: 'HTTP(S) proxy agents: TLS through CONNECT, TLS to the proxy, keep-alive, timeouts',
    files: ['test/*.test.js'],
    // Child processes, not ava's default worker threads: the layer installs in main threads only.
    runner: ['node_modules/.bin/ava', '--tap', '--no-worker-threads'],
    env: { NODE_EXTRA_CA_CERTS: 'test/fixtures/certs_unit_test.pem' },
    // The tests' dns.lookup stub answers one address; Node 20's happy eyeballs asks for all.
    nodeOptions: ['--no-network-family-autoselection'],
    fixtures: [
      ...selfSigned(
        'test/fixtures/key_proxy.pem',
        'test/fixtures/cert_proxy.pem',
        'proxy.hpagent-unit-test.com',
      ),
      ...selfSigned(
        'test/fixtures/key_server.pem',
        'test/fixtures/cert_server.pem',
        'server.hpagent-unit-test.com',
      ),
      {
        path: 'test/fixtures/certs_unit_test.pem',
        command: [
          'sh',
          '-c',
          'cat test/fixtures/cert_proxy.pem test/fixtures/cert_server.pem > test/fixtures/certs_unit_test.pem',
        ],
      },
    ],
    notes: [
      'ava files only: `standard`, `tsd` and test/hang-socket/runner.sh (no TAP) left out',
      'TLS fixtures are not in the tarball: made with openssl for the names the tests use',
    ],
  },
  {
    name: 'needle',
    pkg: 'needle',
    version: '3.5.0',
    exercises: 'an HTTP client: TLS, proxies, timeouts, redirects, request and response streams',
    files: ['test/*_spec.js'],
    runner: ['node_modules/.bin/mocha', '--reporter', 'tap'],
    fixtures: selfSigned('test/keys/ssl.key', 'test/keys/ssl.cert', 'localhost'),
    // Its servers listen on these (read from the spec files); safe here, each run has its own lo.
    fixedPorts: [2233, 3333, 3456, 4321, 7707, 11111, 11112, 11123, 22222, 54321],
    notes: [
      'only the *_spec.js files: `mocha test` also loads helpers and manual scripts',
      'tests that fetch public hosts fail in both runs (no network), so they never count',
    ],
  },
  {
    name: 'mitm-proxy',
    pkg: 'http-mitm-proxy',
    version: '1.1.0',
    exercises: 'a TLS-intercepting proxy: CONNECT, generated certificates, websockets, chunking',
    files: ['test/01_proxy.ts'],
    runner: ['node_modules/.bin/ts-mocha', '--reporter', 'tap', '--exit'],
    env: { TS_NODE_TRANSPILE_ONLY: 'true' },
    notes: ['its `test` script, without cross-env'],
  },
  {
    name: 'static',
    pkg: '@fastify/static',
    version: '10.1.11',
    exercises: 'serving files as streams: ranges, compression, directory listings',
    files: ['test/*.test.js'],
    runner: nodeTest,
    perFile: true,
    notes: ['`test:unit` (borp) without coverage, through node --test; tstyche left out'],
  },
  {
    name: 'fastify',
    pkg: 'fastify',
    version: '5.12.8',
    exercises: 'a server: http2, https, timeouts, keep-alive, closing, streaming, upgrades',
    // 110 of fastify's 197 files listen on a socket (the others only inject(), which opens none);
    // these are the ones about the transport. All 110 would add about 8 minutes to a full run.
    files: [
      'test/http2/*.test.js',
      'test/https/*.test.js',
      'test/client-timeout.test.js',
      'test/connection-timeout.test.js',
      'test/keep-alive-timeout.test.js',
      'test/request-timeout.test.js',
      'test/handler-timeout.test.js',
      'test/close.test.js',
      'test/close-pipelining.test.js',
      'test/max-requests-per-socket.test.js',
      'test/stream.*.test.js',
      'test/upgrade.test.js',
      'test/reply-trailers.test.js',
      'test/header-overflow.test.js',
      'test/body-limit.test.js',
      'test/web-api.test.js',
      'test/listen.*.test.js',
    ],
    runner: nodeTest,
    perFile: true,
    notes: [
      'a subset, 32 of its 197 test files: of the 110 that listen on a socket, those about http2, https, timeouts, keep-alive, closing, streams, upgrades, trailers, limits and listen()',
    ],
  },
  {
    name: 'reply-from',
    pkg: '@fastify/reply-from',
    version: '12.6.5',
    exercises: 'proxying over http, https, http2 and undici; timeouts, retries, aborted streams',
    files: ['test/*.test.js'],
    runner: nodeTest,
    perFile: true,
    notes: ['`test:unit` without c8; `test:typescript` (tstyche) left out'],
  },
];

/** The suites named in `names` (all when empty), in the order given. */
export function selectSuites(names: readonly string[]): SuiteSpec[] {
  if (names.length === 0) return [...suites];
  return names.map((name) => {
    const suite = suites.find((s) => s.name === name);
    if (!suite) {
      throw new Error(`no suite ${name}; the suites are ${suites.map((s) => s.name).join(', ')}`);
    }
    return suite;
  });
}
