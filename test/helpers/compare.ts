import assert from 'node:assert/strict';
import type { Chain } from '../../dev/harness/chain.js';
import { comparableHeaders, get, type GetOptions, type Received } from './http.js';

/**
 * Requests `path` through a vanilla and an odb chain at once and asserts the client cannot tell
 * them apart: complete bodies, same status, headers and SHA-256. Returns the odb response.
 */
export async function sameThroughBoth(
  vanilla: Chain,
  odb: Chain,
  path: string,
  options: GetOptions = {},
): Promise<Received> {
  const [a, b] = await Promise.all([get(vanilla.url(path), options), get(odb.url(path), options)]);
  assert.ok(a.complete, `${path}: vanilla body complete`);
  assert.ok(b.complete, `${path}: odb body complete`);
  assert.equal(b.status, a.status, `${path}: status`);
  assert.deepEqual(comparableHeaders(b.headers), comparableHeaders(a.headers), `${path}: headers`);
  assert.equal(b.sha256, a.sha256, `${path}: body`);
  return b;
}
