import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOdbError } from '../../../src/core/errors.js';
import { loadStreamConfig } from '../../../src/stream-mode/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'odb-stream-config-'));

function configFile(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

test('nothing configured: stream mode is off', async () => {
  assert.equal(await loadStreamConfig({}), undefined);
});

test('variables alone: lists, sizes and defaults', async () => {
  const config = await loadStreamConfig({
    ODB_KEY_FILE: '/k',
    ODB_LISTEN: '8080, 8090',
    ODB_CONNECT: '10.0.0.5:8080,:9000',
    ODB_THRESHOLD: '128KiB',
  });
  assert.ok(config);
  assert.deepEqual(config.listen, [8080, 8090]);
  assert.deepEqual(config.connect, [
    { host: '10.0.0.5', port: 8080 },
    { host: undefined, port: 9000 },
  ]);
  assert.equal(config.thresholdBytes, 128 * 1024);
  assert.equal(config.store.budgetBytes, 256 * 1024 * 1024);
  assert.deepEqual(config.gather, { maxBytes: 4 * 1024 * 1024, waitMs: 20 });
  assert.equal(config.native, true);
  assert.equal(config.probeWaitMs, 50);
  assert.deepEqual(config.drain, { timeoutMs: 10_000, quietMs: 1000 });
});

test('probe wait and drain: variables, file keys, variables winning', async () => {
  const path = configFile('drain.json', {
    keyFile: '/k',
    connect: '*',
    probeWait: '20ms',
    drain: { timeout: '30s', quiet: '2s' },
  });
  const fromFile = await loadStreamConfig({ ODB_CONFIG: path });
  assert.equal(fromFile?.probeWaitMs, 20);
  assert.deepEqual(fromFile?.drain, { timeoutMs: 30_000, quietMs: 2000 });
  const fromEnv = await loadStreamConfig({
    ODB_CONFIG: path,
    ODB_PROBE_WAIT: '0',
    ODB_DRAIN_TIMEOUT: '0',
    ODB_DRAIN_QUIET: '250ms',
  });
  assert.equal(fromEnv?.probeWaitMs, 0);
  assert.deepEqual(fromEnv?.drain, { timeoutMs: 0, quietMs: 250 });
});

test('a file, with variables winning over it', async () => {
  const path = configFile('ok.json', {
    keyFile: '/from-file',
    listen: '*',
    clientFacing: [443],
    threshold: '1MiB',
    gather: { max: '8MiB', wait: '5ms' },
    store: { ttl: '30s' },
    native: true,
  });
  const config = await loadStreamConfig({
    ODB_CONFIG: path,
    ODB_KEY_FILE: '/from-env',
    ODB_GATHER: '0',
    ODB_NATIVE: 'off',
  });
  assert.ok(config);
  assert.equal(config.keyFile, '/from-env');
  assert.equal(config.listen, '*');
  assert.deepEqual(config.clientFacing, [443]);
  assert.equal(config.thresholdBytes, 1024 * 1024);
  assert.equal(config.store.ttlMs, 30_000);
  assert.deepEqual(config.gather, { maxBytes: 0, waitMs: 5 });
  assert.equal(config.native, false);
});

test('bad settings fail with ODB_ERR_INVALID_OPTION naming the setting', async () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ ODB_KEY_FILE: '/k', ODB_LISTEN: '80,http' }, /ODB_LISTEN entry http/],
    [{ ODB_KEY_FILE: '/k', ODB_CLIENT_FACING: '70000' }, /ODB_CLIENT_FACING entry 70000/],
    [{ ODB_KEY_FILE: '/k', ODB_THRESHOLD: 'lots' }, /ODB_THRESHOLD/],
    [{ ODB_KEY_FILE: '/k', ODB_GATHER_WAIT: 'soon' }, /ODB_GATHER_WAIT/],
    [{ ODB_KEY_FILE: '/k', ODB_NATIVE: 'no' }, /ODB_NATIVE no/],
    [{ ODB_KEY_FILE: '/k', ODB_PROBE_WAIT: 'brief' }, /ODB_PROBE_WAIT/],
    [{ ODB_KEY_FILE: '/k', ODB_DRAIN_TIMEOUT: '-1s' }, /ODB_DRAIN_TIMEOUT/],
    [{ ODB_KEY_FILE: '/k', ODB_DRAIN_QUIET: 'a while' }, /ODB_DRAIN_QUIET/],
    [{ ODB_LISTEN: '80' }, /ODB_KEY_FILE/],
    [{ ODB_CONFIG: configFile('extra.json', { keyFile: '/k', colour: 'blue' }) }, /colour/],
    [{ ODB_CONFIG: join(dir, 'absent.json') }, /absent\.json/],
  ];
  for (const [env, message] of cases) {
    await assert.rejects(
      loadStreamConfig(env),
      (err: unknown) => isOdbError(err, 'ODB_ERR_INVALID_OPTION') && message.test(err.message),
      JSON.stringify(env),
    );
  }
});
