import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarise } from '../../../bench/transparency/report.js';
import type { SuiteRun } from '../../../bench/transparency/run-suite.js';
import { parseTap, type TestOutcome } from '../../../bench/transparency/tap.js';

const root = '/cache/suites/fastify/package';

// As node --test (Node 20) prints one file: nested subtests, YAML diagnostics, a nested plan,
// and the file reported on its own only because it timed out.
const nodeTap = `TAP version 13
# Subtest: bodyLimit
ok 1 - bodyLimit
  ---
  duration_ms: 12.5
  ...
# Subtest: applied to decoded content
    # Subtest: bodyLimit 40k
    ok 1 - bodyLimit 40k
      ---
      duration_ms: 3.1
      ...
    # Subtest: bodyLimit 20k
    not ok 2 - bodyLimit 20k
      ---
      duration_ms: 4.2
      location: '${root}/test/body-limit.test.js:40:3'
      failureType: 'testCodeFailure'
      error: |-
        Expected values to be strictly equal:
        413 !== 200
      code: 'ERR_ASSERTION'
      ...
    1..2
not ok 2 - applied to decoded content
  ---
  duration_ms: 8.0
  type: 'test'
  failureType: 'subtestsFailed'
  error: '1 subtest failed'
  ...
# Subtest: upgrade IPv4 and IPv6 \\# both
ok 3 - upgrade IPv4 and IPv6 \\# both # SKIP no IPv6
  ---
  duration_ms: 0.1
  ...
# Subtest: ${root}/test/body-limit.test.js
not ok 4 - ${root}/test/body-limit.test.js
  ---
  duration_ms: 30001.2
  location: '${root}/test/body-limit.test.js:1:1'
  failureType: 'testTimeoutFailure'
  error: 'test timed out after 30000ms'
  code: 'ERR_TEST_FAILURE'
  ...
1..4
# tests 5
# pass 2
# fail 2
`;

test('node --test TAP: leaves by their path, a parent only when it fails on its own', () => {
  const outcomes = parseTap(nodeTap, root);
  assert.deepEqual(
    outcomes.map((o) => [o.id, o.status]),
    [
      ['bodyLimit', 'pass'],
      ['applied to decoded content > bodyLimit 40k', 'pass'],
      ['applied to decoded content > bodyLimit 20k', 'fail'],
      ['upgrade IPv4 and IPv6 # both', 'skip'],
      ['test/body-limit.test.js', 'fail'],
    ],
  );
  const failure = outcomes[2]!;
  assert.ok(
    failure.detail.some((l) => l.trim() === '413 !== 200'),
    failure.detail.join('\n'),
  );
  assert.ok(failure.detail.includes("location: 'test/body-limit.test.js:40:3'"));
  assert.ok(!failure.detail.some((l) => l.startsWith('duration_ms') || l.includes('1..2')));
  assert.ok(outcomes[4]!.detail.includes("error: 'test timed out after 30000ms'"));
});

test('mocha TAP: flat names, text diagnostics, repeated names numbered', () => {
  const mochaTap = `ok 1 utils returns false if the host matches (ip)
not ok 2 request headers sets Connection header to close
  AssertionError: expected 'keep-alive' to equal 'close'
      at Assertion.fail (node_modules/should/cjs/should.js:275:17)
ok 3 utils returns false if the host matches (ip)
ok 4 proxy is pending # SKIP -
# tests 4
# pass 2
# fail 1
1..4
`;
  const outcomes = parseTap(mochaTap, root);
  assert.deepEqual(
    outcomes.map((o) => [o.id, o.status]),
    [
      ['utils returns false if the host matches (ip)', 'pass'],
      ['request headers sets Connection header to close', 'fail'],
      ['utils returns false if the host matches (ip) #2', 'pass'],
      ['proxy is pending', 'skip'],
    ],
  );
  assert.equal(outcomes[1]!.detail[0], "AssertionError: expected 'keep-alive' to equal 'close'");
});

test('ava TAP: `file › title` names and YAML diagnostics', () => {
  const avaTap = `TAP version 13
ok 1 - http-http › Timeout
not ok 2 - http-https › Basic
  ---
    name: AssertionError
    message: Rejected promise returned by test
  ...
ok 3 - got › https to http # TODO later
`;
  const outcomes = parseTap(avaTap, root);
  assert.deepEqual(
    outcomes.map((o) => [o.id, o.status]),
    [
      ['http-http › Timeout', 'pass'],
      ['http-https › Basic', 'fail'],
      ['got › https to http', 'skip'],
    ],
  );
  assert.deepEqual(outcomes[1]!.detail, [
    'name: AssertionError',
    'message: Rejected promise returned by test',
  ]);
});

function run(configuration: string, outcomes: TestOutcome[]): SuiteRun {
  return {
    suite: 'fastify',
    configuration,
    status: 'failed',
    seconds: 1,
    exits: {},
    notRun: [],
    outcomes,
    odbMessages: {},
    logs: '/logs',
  };
}

test('comparison: fails under the layer only, failing plainly excluded, missing listed', () => {
  const plain = run('plain', [
    { id: 'f > a', status: 'pass', detail: [] },
    { id: 'f > b', status: 'fail', detail: ['no network'] },
    { id: 'f > c', status: 'pass', detail: [] },
    { id: 'f > d', status: 'pass', detail: [] },
  ]);
  const layer = run('b', [
    { id: 'f > a', status: 'fail', detail: ['1 !== 0'] },
    { id: 'f > b', status: 'fail', detail: ['no network'] },
    { id: 'f > c', status: 'pass', detail: [] },
    // A file reported on its own (it hung) exists only in the run where it failed.
    { id: 'f > f', status: 'fail', detail: ['test timed out after 30000ms'] },
  ]);
  const summary = summarise(layer, plain);
  assert.deepEqual(
    summary.failsUnderLayer?.map((r) => r.id),
    ['f > a', 'f > f'],
  );
  assert.deepEqual(summary.missingUnderLayer, ['f > d']);
  assert.equal(summary.failed, 3);
  assert.equal(summarise(plain, plain).failsUnderLayer, undefined);
});
