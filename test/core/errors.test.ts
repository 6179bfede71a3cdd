// Every stable code is documented, and the page documents no code that does not exist.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { errorCodes, OdbError, isOdbError } from '../../src/core/errors.js';
import { repoRoot } from '../helpers/repo.js';

test('docs/errors.md lists exactly the codes of the registry', () => {
  const page = readFileSync(join(repoRoot, 'docs/errors.md'), 'utf8');
  const documented = new Set(
    [...page.matchAll(/^\|\s*`(ODB_ERR_[A-Z_]+)`\s*\|/gm)].map((m) => m[1]),
  );
  assert.deepEqual([...documented].sort(), Object.keys(errorCodes).sort());
});

test('codes are stable identifiers', () => {
  for (const code of Object.keys(errorCodes)) assert.match(code, /^ODB_ERR_[A-Z_]+$/);
  const err = new OdbError('ODB_ERR_BAD_MAC', 'detail');
  assert.equal(err.code, 'ODB_ERR_BAD_MAC');
  assert.match(err.message, /MAC.*detail/);
  assert.ok(isOdbError(err, 'ODB_ERR_BAD_MAC'));
  assert.ok(!isOdbError(new Error('x')));
});
