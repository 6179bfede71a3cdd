// The wrk runner's pieces: the result line its Lua hook prints is parsed, a run without it fails
// loudly, and the arguments carry every setting.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseWrkOutput, socketErrors, wrkArgs, wrkScript } from '../../bench/wrk.js';

const stdout = `Running 5s test @ http://127.0.0.1:8080/65536.bin
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.72ms  411.20us  10.85ms   83.01%
    Req/Sec     4.65k   220.31     5.01k    72.00%
  23130 requests in 5.00s, 1.41GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:   4624.87
Transfer/sec:    289.36MB
odb-wrk-result {"requests":23130,"durationUs":5001225,"bytes":1517249580,"connect":0,"read":2,"write":0,"status":3,"timeout":1,"mean":1721.4,"p50":1650,"p90":2201,"p99":3012,"p999":7990,"max":10850}
`;

test('wrk: the result line of the done hook is parsed, wrk’s own text ignored', () => {
  const r = parseWrkOutput(stdout);
  assert.equal(r.requests, 23130);
  assert.equal(r.durationUs, 5001225);
  assert.ok(Math.abs(r.requestsPerSecond - 4624.87) < 0.01, String(r.requestsPerSecond));
  assert.equal(r.bytes, 1517249580);
  assert.deepEqual(r.errors, { connect: 0, read: 2, write: 0, timeout: 1 });
  assert.equal(socketErrors(r), 3);
  assert.equal(r.statusErrors, 3);
  assert.deepEqual(r.latencyUs, {
    mean: 1721.4,
    p50: 1650,
    p90: 2201,
    p99: 3012,
    p999: 7990,
    max: 10850,
  });
});

test('wrk: output without the result line, or with a field missing, is an error', () => {
  assert.throws(() => parseWrkOutput('Running 5s test @ http://x/\n'), /no result line/);
  const truncated = stdout.replace('"p99":3012,', '');
  assert.throws(() => parseWrkOutput(truncated), /lacks p99/);
});

test('wrk: arguments and the Lua hook', () => {
  assert.deepEqual(
    wrkArgs('http://127.0.0.1:1/a', '/tmp/x.lua', {
      threads: 1,
      connections: 8,
      durationS: 5,
      timeoutS: 10,
    }),
    [
      '-t',
      '1',
      '-c',
      '8',
      '-d',
      '5s',
      '--timeout',
      '10s',
      '-s',
      '/tmp/x.lua',
      'http://127.0.0.1:1/a',
    ],
  );
  assert.match(wrkScript, /^done = function\(summary, latency, requests\)$/m);
  assert.match(wrkScript, /latency:percentile\(99\.9\)/);
});
