// Every stable code is documented with its status, the page documents no code that does not
// exist, isOdbError knows the errors of another copy of the module, and every error has a code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  errorCodes,
  httpStatusOf,
  OdbError,
  isOdbError,
  type OdbErrorCode,
} from '../../src/core/errors.js';
import type * as errors from '../../src/core/errors.js';
import { DestinationClosedError } from '../../src/http-core/response-sink.js';
import { statusForError } from '../../src/protocol/store-rpc.js';
import { classify } from '../../src/store/fetch-errors.js';
import { repoRoot } from '../helpers/repo.js';

const codes = Object.keys(errorCodes) as OdbErrorCode[];

/** The rows of docs/errors.md's table: code → the HTTP status column. */
function documentedRows(): Map<string, string> {
  const page = readFileSync(join(repoRoot, 'docs/errors.md'), 'utf8');
  const rows = [...page.matchAll(/^\|\s*`(ODB_ERR_[A-Z_]+)`\s*\|[^|]*\|([^|]*)\|/gm)];
  return new Map(rows.map((m) => [m[1]!, m[2]!.trim()]));
}

test('docs/errors.md lists exactly the codes of the registry', () => {
  assert.deepEqual([...documentedRows().keys()].sort(), [...codes].sort());
});

test('docs/errors.md gives each code the status of the registry', () => {
  for (const [code, status] of documentedRows()) {
    const registered = httpStatusOf(code as OdbErrorCode);
    assert.equal(status, registered === undefined ? '—' : String(registered), code);
  }
});

test('codes are stable identifiers', () => {
  for (const code of codes) assert.match(code, /^ODB_ERR_[A-Z_]+$/);
  const err = new OdbError('ODB_ERR_BAD_MAC', 'detail');
  assert.equal(err.code, 'ODB_ERR_BAD_MAC');
  assert.equal(err.detail, 'detail');
  assert.equal(err.message, `${errorCodes.ODB_ERR_BAD_MAC}: detail`);
  assert.match(err.message, /MAC.*detail/);
  assert.equal(new OdbError('ODB_ERR_BUSY').message, errorCodes.ODB_ERR_BUSY);
  assert.ok(isOdbError(err, 'ODB_ERR_BAD_MAC'));
  assert.ok(!isOdbError(err, 'ODB_ERR_BAD_DESCRIPTOR'));
  assert.ok(!isOdbError(new Error('x')));
  assert.ok(!isOdbError(Object.assign(new Error('x'), { code: 'ODB_ERR_BAD_MAC' })));
  for (const value of [undefined, null, 'ODB_ERR_BAD_MAC', 42]) assert.ok(!isOdbError(value));
});

test('the statuses of the codes are the ones clients see', () => {
  // What a store answers (docs/protocol.md §4) and a relay answers when every upstream is busy.
  const expected: Partial<Record<OdbErrorCode, number>> = {
    ODB_ERR_BAD_DESCRIPTOR: 400,
    ODB_ERR_BAD_MAC: 403,
    ODB_ERR_UNKNOWN_KEY: 403,
    ODB_ERR_NOT_FOUND: 404,
    ODB_ERR_SOURCE_CHANGED: 409,
    ODB_ERR_EXPIRED: 410,
    ODB_ERR_OUT_OF_RANGE: 416,
    ODB_ERR_PAYLOAD_FAILED: 500,
    ODB_ERR_BUSY: 503,
    ODB_ERR_UPSTREAM_BUSY: 503,
  };
  for (const code of codes) {
    assert.equal(httpStatusOf(code), expected[code], code);
    // A store answers 500 for a code without a status.
    assert.equal(statusForError(code), expected[code] ?? 500, code);
  }
});

test('isOdbError knows the errors of a second copy of the module', async () => {
  const url = new URL('../../src/core/errors.js?copy', import.meta.url).href;
  const copy = (await import(url)) as typeof errors;
  assert.notEqual(copy.OdbError, OdbError, 'a second instance of the module');
  const foreign = new copy.OdbError('ODB_ERR_NOT_FOUND', 'elsewhere');
  assert.ok(!(foreign instanceof OdbError));
  assert.ok(isOdbError(foreign));
  assert.ok(isOdbError(foreign, 'ODB_ERR_NOT_FOUND'));
  assert.ok(!isOdbError(foreign, 'ODB_ERR_EXPIRED'));
  assert.ok(copy.isOdbError(new OdbError('ODB_ERR_EXPIRED'), 'ODB_ERR_EXPIRED'));
  // The brand is a global symbol: any object carrying it and a code counts.
  const branded = { [Symbol.for('odb.error')]: true, code: 'ODB_ERR_BUSY', message: 'busy' };
  assert.ok(isOdbError(branded, 'ODB_ERR_BUSY'));
  assert.ok(!isOdbError({ [Symbol.for('odb.error')]: true }), 'no code');
});

test('the brand does not show in what is logged of an error', () => {
  const err = new OdbError('ODB_ERR_PROTOCOL', 'x');
  assert.deepEqual(Object.getOwnPropertySymbols(err), []);
  assert.ok(!Object.keys(err).some((k) => k.includes('odb.error')));
});

test('a closed destination has a code, and a fetch it ends is still an aborted fetch', () => {
  const closed = new DestinationClosedError();
  assert.ok(closed instanceof DestinationClosedError);
  assert.ok(isOdbError(closed, 'ODB_ERR_DESTINATION_CLOSED'));
  assert.equal(closed.name, 'DestinationClosedError');
  assert.equal(closed.message, 'destination closed before the response body ended');
  assert.equal(httpStatusOf('ODB_ERR_DESTINATION_CLOSED'), undefined);
  // What a store client's caller sees (the front end tells a client that left by the cause).
  const fetchError = classify(closed, undefined);
  assert.ok(isOdbError(fetchError, 'ODB_ERR_FETCH_ABORTED'));
  assert.equal(fetchError.cause, closed);
  assert.equal(fetchError.detail, closed.message);
  assert.ok(isOdbError(classify(closed, 'waiting'), 'ODB_ERR_FETCH_TIMEOUT'));
  // Any other OdbError is passed on as it is.
  const busy = new OdbError('ODB_ERR_BUSY');
  assert.equal(classify(busy, undefined), busy);
});
