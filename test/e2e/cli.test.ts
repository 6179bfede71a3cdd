// The `odb` command as users run it: exit codes, messages, help, key files, config files, demo.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { odbBin, startOdbProcess } from '../../src/harness/tier-process.js';
import { parseKeyFile } from '../../src/keys/keyring.js';
import { workspace } from '../helpers/fixtures.js';

const run = promisify(execFile);
const ws = workspace();
after(() => ws.cleanup());

async function odb(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [odbBin, ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('keygen writes a private key file and refuses to overwrite it', async () => {
  const path = join(ws.dir, 'k1.json');
  const first = await odb('keygen', '--out', path);
  assert.equal(first.code, 0);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const key = parseKeyFile(readFileSync(path, 'utf8')).signing;
  assert.equal(key.secret.length, 32);
  const again = await odb('keygen', '--out', path);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /exists.*--force.*ODB_ERR_KEY_FILE/);
  assert.equal((await odb('keygen', '--out', path, '--force')).code, 0);
  assert.notDeepEqual(parseKeyFile(readFileSync(path, 'utf8')).signing.secret, key.secret);
});

test('odb mode does not start without a key; vanilla does', async () => {
  for (const tier of ['be', 'fe']) {
    const extra =
      tier === 'fe' ? ['--upstream', 'http://127.0.0.1:9'] : ['--store-listen', '127.0.0.1:0'];
    const r = await odb(tier, '--listen', '127.0.0.1:0', ...extra);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--key-file.*odb keygen.*ODB_ERR_KEY_FILE/);
  }
  const vanilla = await startOdbProcess('be', [
    'be',
    '--listen',
    '127.0.0.1:0',
    '--mode',
    'vanilla',
  ]);
  await vanilla.stop();
});

test('bad options exit 2 and name the option', async () => {
  const r = await odb('be', '--threshold', 'huge', '--mode', 'vanilla');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--threshold/);
  const badConfig = join(ws.dir, 'bad.json');
  writeFileSync(badConfig, JSON.stringify({ upstream: ['http://a:1'], listn: ':1' }));
  const c = await odb('is', '--config', badConfig);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /listn/);
  const unknown = await odb('fe', '--no-such-option');
  assert.equal(unknown.code, 2);
});

test('a config file configures a tier', async () => {
  const config = join(ws.dir, 'is.json');
  writeFileSync(
    config,
    JSON.stringify({
      listen: '127.0.0.1:0',
      upstream: ['http://127.0.0.1:9'],
      connections: 4,
      logLevel: 'warn',
    }),
  );
  const is = await startOdbProcess('is', ['is', '--config', config]);
  assert.match(is.addresses.http!, /^127\.0\.0\.1:\d+$/);
  await is.stop();
});

test('--help documents every option of every command', async () => {
  const tables = await import('../../src/cli/tier-commands.js');
  const expected: Record<string, Record<string, { flag: string }>> = {
    be: tables.backendOptions,
    is: tables.intermediateOptions,
    fe: tables.frontendOptions,
  };
  for (const [command, table] of Object.entries(expected)) {
    const { stdout } = await odb(command, '--help');
    for (const spec of Object.values(table))
      assert.ok(stdout.includes(spec.flag.split(' ')[0]!), `${command}: ${spec.flag}`);
    assert.ok(stdout.includes('--config'));
  }
});

test('demo: runs both modes, prints the table, leaves no process or directory behind', async () => {
  const before = new Set(readdirSync('/tmp').filter((f) => f.startsWith('odb-demo-')));
  const r = await odb(
    'demo',
    '--sizes',
    '1KiB,256KiB',
    '--duration',
    '300ms',
    '--warmup',
    '100ms',
    '--rate',
    '50',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /vanilla\s+1 KiB/);
  assert.match(r.stdout, /odb\s+256 KiB/);
  assert.match(r.stdout, /SHA-256-verified.*0 errors/);
  const leftover = readdirSync('/tmp').filter((f) => f.startsWith('odb-demo-') && !before.has(f));
  assert.deepEqual(leftover, []);
  const { stdout } = await run('ps', ['-eo', 'args']);
  assert.equal(stdout.split('\n').filter((l) => l.includes('odb-demo-')).length, 0);
});
