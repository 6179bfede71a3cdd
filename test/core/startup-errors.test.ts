// Listen failures name the flag that gave the address; configuration errors exit 2 in one line.
// (EACCES cannot be provoked when the tests run as root: the errors are built as Node builds them.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeListenError,
  exitStatusFor,
  startupErrorLine,
} from '../../src/core/startup-errors.js';
import { OdbError, isOdbError } from '../../src/core/errors.js';

/** An error shaped like the one `net.Server.listen` emits. */
function listenError(code: string, address: string, port: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`listen ${code}: ${address}:${port}`), {
    code,
    syscall: 'listen',
    address,
    port,
  });
}

const listeners = {
  '--listen': { host: '0.0.0.0', port: 80 },
  '--store-listen': { host: '127.0.0.1', port: 8081 },
  '--metrics-listen': undefined,
};

test('the flag whose address failed is named, with what to do', () => {
  const denied = describeListenError(listenError('EACCES', '0.0.0.0', 80), listeners);
  assert.ok(isOdbError(denied, 'ODB_ERR_LISTEN'));
  assert.match(denied.message, /--listen 0\.0\.0\.0:80: permission denied.*CAP_NET_BIND_SERVICE/);
  const inUse = describeListenError(listenError('EADDRINUSE', '127.0.0.1', 8081), listeners);
  assert.match(inUse!.message, /--store-listen 127\.0\.0\.1:8081: address already in use/);
  const unresolved = describeListenError(
    Object.assign(new Error('getaddrinfo ENOTFOUND nowhere'), {
      code: 'ENOTFOUND',
      syscall: 'getaddrinfo',
      hostname: 'nowhere',
    }),
    { '--listen': { host: '127.0.0.1', port: 0 }, '--store-listen': { host: 'nowhere', port: 0 } },
  );
  assert.match(unresolved!.message, /--store-listen nowhere:0: the host name does not resolve/);
  // Two flags on one address: both are named.
  const twice = describeListenError(listenError('EADDRINUSE', '127.0.0.1', 9000), {
    '--listen': { host: '127.0.0.1', port: 9000 },
    '--store-listen': { host: '127.0.0.1', port: 9000 },
  });
  assert.match(twice!.message, /--listen 127\.0\.0\.1:9000 or --store-listen 127\.0\.0\.1:9000/);
});

test('other errors are not listen errors', () => {
  assert.equal(describeListenError(new Error('boom'), listeners), undefined);
  assert.equal(describeListenError(undefined, listeners), undefined);
  const connect = Object.assign(new Error('connect ECONNREFUSED'), {
    code: 'EADDRINUSE',
    syscall: 'connect',
  });
  assert.equal(describeListenError(connect, listeners), undefined);
});

test('configuration errors exit 2, others 1; always one line', () => {
  const configuration = [
    'ODB_ERR_INVALID_OPTION',
    'ODB_ERR_KEY_FILE',
    'ODB_ERR_TLS_FILE',
    'ODB_ERR_LISTEN',
  ] as const;
  for (const code of configuration) {
    assert.equal(exitStatusFor(new OdbError(code, 'x')), 2);
  }
  assert.equal(exitStatusFor(new OdbError('ODB_ERR_STORE_UNREACHABLE')), 1);
  assert.equal(exitStatusFor(new Error('x')), 1);
  const line = startupErrorLine(new OdbError('ODB_ERR_INVALID_OPTION', 'a\n  b'));
  assert.equal(
    line,
    'odb: an option or configuration value is invalid: a b [ODB_ERR_INVALID_OPTION]',
  );
});
