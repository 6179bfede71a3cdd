// A program under `node --import odb/register` with a bad ODB_* setting or key file does not
// run: one line on stderr naming the setting and the fix, no stack trace, exit status 2.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { packageRoot } from '../../dev/harness/node-program.js';
import { formatKeyFile, generateClusterKey } from '../../src/core/keys/keyring.js';
import { forEachConcurrently } from '../helpers/concurrently.js';
import { workspace } from '../helpers/fixtures.js';

const run = promisify(execFile);
const ws = workspace();
after(() => ws.cleanup());

/** Runs a one-line program under stream mode with `env` (and nothing else of ODB's). */
async function program(
  env: Record<string, string>,
  entry: string[] = ['-e', 'console.log("the program ran")'],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('ODB_') && k !== 'NODE_OPTIONS'),
  );
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'odb/register', ...entry], {
      cwd: packageRoot,
      env: { ...clean, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function file(name: string, text: string, mode = 0o600): string {
  const path = join(ws.dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

test('bad ODB_* settings and key files stop the program with one line naming the setting, exit 2', async () => {
  const good = generateClusterKey().secret.toString('base64');
  const missing = join(ws.dir, 'absent.key');
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const taken = `127.0.0.1:${(holder.address() as { port: number }).port}`;
  const readable = file('readable.key', formatKeyFile([generateClusterKey()]), 0o644);
  const cases: [Record<string, string>, RegExp, string][] = [
    [
      { ODB_KEY_FILE: missing },
      new RegExp(`ODB_KEY_FILE ${missing}: no such file; create one with: odb keygen`),
      'ODB_ERR_KEY_FILE',
    ],
    [{ ODB_KEY_FILE: file('empty.key', '') }, /ODB_KEY_FILE .*empty/, 'ODB_ERR_KEY_FILE'],
    [{ ODB_KEY_FILE: file('corrupt.key', '{"ver') }, /ODB_KEY_FILE .*not JSON/, 'ODB_ERR_KEY_FILE'],
    [{ ODB_KEY_FILE: readable }, new RegExp(`chmod 600 ${readable}`), 'ODB_ERR_KEY_FILE'],
    [
      {
        ODB_KEY_FILE: file(
          'zero.key',
          JSON.stringify({
            version: 1,
            keys: [{ id: 9, secret: Buffer.alloc(32).toString('base64') }],
          }),
        ),
      },
      /ODB_KEY_FILE .*repeated byte/,
      'ODB_ERR_KEY_FILE',
    ],
    [
      {
        ODB_KEY_FILE: file(
          'stray.key',
          JSON.stringify({ version: 1, keys: [{ id: 9, secret: `#${good}` }] }),
        ),
      },
      /ODB_KEY_FILE .*canonical base64/,
      'ODB_ERR_KEY_FILE',
    ],
    [
      { ODB_CONFIG: file('weak-config.json', JSON.stringify({ keyFile: readable })) },
      /keyFile of ODB_CONFIG .*chmod 600/,
      'ODB_ERR_KEY_FILE',
    ],
    [
      { ODB_KEY_FILE: ws.keyFile, ODB_THRESHOLD: 'huge' },
      /ODB_THRESHOLD/,
      'ODB_ERR_INVALID_OPTION',
    ],
    [
      { ODB_KEY_FILE: ws.keyFile, ODB_FETCH_RETRIES: 'many' },
      /ODB_FETCH_RETRIES/,
      'ODB_ERR_INVALID_OPTION',
    ],
    [
      { ODB_KEY_FILE: ws.keyFile, ODB_LOG_LEVEL: 'loud' },
      /ODB_LOG_LEVEL/,
      'ODB_ERR_INVALID_OPTION',
    ],
    [{ ODB_KEY_FILE: ws.keyFile, ODB_LISTEN: '99999' }, /ODB_LISTEN/, 'ODB_ERR_INVALID_OPTION'],
    [{ ODB_KEY_FILE: ws.keyFile, ODB_NATIVE: 'maybe' }, /ODB_NATIVE/, 'ODB_ERR_INVALID_OPTION'],
    [
      { ODB_KEY_FILE: ws.keyFile, ODB_STORE_ADVERTISE: 'no-port' },
      /ODB_STORE_ADVERTISE/,
      'ODB_ERR_INVALID_OPTION',
    ],
    [{ ODB_LISTEN: '8080' }, /ODB_KEY_FILE .*required/, 'ODB_ERR_INVALID_OPTION'],
    [
      { ODB_CONFIG: join(ws.dir, 'absent.json') },
      /ODB_CONFIG .*absent\.json: no such file/,
      'ODB_ERR_INVALID_OPTION',
    ],
    [
      { ODB_CONFIG: file('typo.json', JSON.stringify({ keyFile: ws.keyFile, treshold: 1 })) },
      /ODB_CONFIG .*treshold/,
      'ODB_ERR_INVALID_OPTION',
    ],
    [
      { ODB_KEY_FILE: ws.keyFile, ODB_STORE_LISTEN: taken },
      new RegExp(`ODB_STORE_LISTEN ${taken}: address already in use`),
      'ODB_ERR_LISTEN',
    ],
  ];
  try {
    await forEachConcurrently(cases, 4, async ([env, named, code]) => {
      const r = await program(env);
      const what = JSON.stringify(env);
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, '', `${what}: the program must not run`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${what}: one line expected: ${r.stderr}`);
      assert.match(lines[0]!, new RegExp(`^odb: .*\\[${code}\\]$`), what);
      assert.match(lines[0]!, named, what);
    });
  } finally {
    holder.close();
  }
});

test('a good configuration runs the program, whatever its entry (a file, -e, --input-type=module -e) and Node options', async () => {
  const env = { ODB_KEY_FILE: ws.keyFile, ODB_LOG_LEVEL: 'error' };
  const script = file('program.mjs', 'console.log("the program ran");\n');
  for (const entry of [
    undefined,
    [script],
    ['--input-type=module', '-e', 'console.log("the program ran")'],
    ['--input-type', 'module', '--eval', 'console.log("the program ran")'],
    // Process-wide options, which Node refuses in a worker's execArgv.
    ['--max-old-space-size=300', '--stack-size=2000', '--expose-gc', '--title=odb-test', script],
  ]) {
    const r = await program(env, entry);
    assert.equal(r.code, 0, `${entry?.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, 'the program ran\n');
  }
});
