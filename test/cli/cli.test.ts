// The `odb` command as users run it: exit codes, messages, help, key files, config files, demo.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { odbBin, startOdbProcess } from '../../src/demo/tier-process.js';
import { formatKeyFile, generateClusterKey, parseKeyFile } from '../../src/core/keys/keyring.js';
import { forEachConcurrently } from '../helpers/concurrently.js';
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
    assert.equal(r.code, 2);
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

/** The one line a start-up error must be: `odb: … [CODE]`, no stack trace. */
function assertOneLine(r: { stderr: string }, code: string): string {
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0]!, new RegExp(`^odb: .*\\[${code}\\]$`));
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  return lines[0]!;
}

test('keygen --force replaces a symlink instead of writing through it, and leaves mode 0600', async () => {
  const victim = join(ws.dir, 'victim.txt');
  writeFileSync(victim, 'not a key\n', { mode: 0o644 });
  const link = join(ws.dir, 'link.key');
  symlinkSync(victim, link);
  const r = await odb('keygen', '--out', link, '--force');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(victim, 'utf8'), 'not a key\n');
  assert.ok(!lstatSync(link).isSymbolicLink());
  assert.equal(lstatSync(link).mode & 0o777, 0o600);
  parseKeyFile(readFileSync(link, 'utf8'));
  // An existing world-readable file is replaced by a private one.
  const open = join(ws.dir, 'open.key');
  writeFileSync(open, formatKeyFile([generateClusterKey()]));
  chmodSync(open, 0o644);
  assert.equal((await odb('keygen', '--out', open, '--force')).code, 0);
  assert.equal(statSync(open).mode & 0o777, 0o600);
  // Without --force, an existing name (a dangling link too) is refused and left alone.
  const dangling = join(ws.dir, 'dangling.key');
  symlinkSync(join(ws.dir, 'nowhere'), dangling);
  const refused = await odb('keygen', '--out', dangling);
  assert.equal(refused.code, 2);
  assertOneLine(refused, 'ODB_ERR_KEY_FILE');
  assert.equal(readlinkSync(dangling), join(ws.dir, 'nowhere'));
  assert.deepEqual(
    readdirSync(ws.dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left behind',
  );
});

test('keygen --add, --promote and --retire rotate keys in place', async () => {
  const path = join(ws.dir, 'rotate.key');
  assert.equal((await odb('keygen', '--out', path)).code, 0);
  const old = parseKeyFile(readFileSync(path, 'utf8')).signing;
  const added = await odb('keygen', '--out', path, '--add');
  assert.equal(added.code, 0, added.stderr);
  const newId = Number(/added key (\d+)/.exec(added.stdout)?.[1]);
  let ring = parseKeyFile(readFileSync(path, 'utf8'));
  assert.deepEqual(
    ring.keys.map((k) => k.id),
    [old.id, newId],
    'the new key verifies, the old one still signs',
  );
  assert.deepEqual(ring.signing.secret, old.secret);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal((await odb('keygen', '--out', path, '--promote', String(newId))).code, 0);
  ring = parseKeyFile(readFileSync(path, 'utf8'));
  assert.deepEqual(
    ring.keys.map((k) => k.id),
    [newId, old.id],
  );
  const signing = await odb('keygen', '--out', path, '--retire', String(newId));
  assert.equal(signing.code, 2);
  assert.match(assertOneLine(signing, 'ODB_ERR_KEY_FILE'), /promote another key first/);
  assert.equal((await odb('keygen', '--out', path, '--retire', String(old.id))).code, 0);
  assert.deepEqual(
    parseKeyFile(readFileSync(path, 'utf8')).keys.map((k) => k.id),
    [newId],
  );
  const unknown = await odb('keygen', '--out', path, '--promote', String((newId + 1) % 65536));
  assert.equal(unknown.code, 2);
  assert.match(assertOneLine(unknown, 'ODB_ERR_KEY_FILE'), /holds no key with id/);
  const both = await odb('keygen', '--out', path, '--add', '--force');
  assert.equal(both.code, 2);
  assertOneLine(both, 'ODB_ERR_INVALID_OPTION');
});

test('a missing, empty, corrupt, weak or group-readable key file: one line naming --key-file and the fix, exit 2', async () => {
  const good = generateClusterKey().secret.toString('base64');
  const file = (name: string, text: string, mode = 0o600): string => {
    const path = join(ws.dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  };
  const keyFiles: [string, RegExp][] = [
    [join(ws.dir, 'absent.key'), /no such file; create one with: odb keygen --out /],
    [file('empty.key', ''), /empty/],
    [file('corrupt.key', '{"version": 1, "keys": [{"id": 1,'), /not JSON/],
    [file('readable.key', formatKeyFile([generateClusterKey()]), 0o644), /chmod 600/],
    [
      file(
        'zero.key',
        JSON.stringify({ version: 1, keys: [{ id: 1, secret: 'A'.repeat(43) + '=' }] }),
      ),
      /repeated byte/,
    ],
    [
      file('stray.key', JSON.stringify({ version: 1, keys: [{ id: 1, secret: `${good}!!` }] })),
      /canonical base64/,
    ],
  ];
  const runs = keyFiles.flatMap(([path, reason]) =>
    ['be', 'fe'].map((tier) => [tier, path, reason] as const),
  );
  await forEachConcurrently(runs, 4, async ([tier, path, reason]) => {
    const extra =
      tier === 'fe' ? ['--upstream', 'http://127.0.0.1:9'] : ['--store-listen', '127.0.0.1:0'];
    const r = await odb(tier, '--listen', '127.0.0.1:0', '--key-file', path, ...extra);
    assert.equal(r.code, 2, `${tier} ${path}: ${r.stderr}`);
    const line = assertOneLine(r, 'ODB_ERR_KEY_FILE');
    assert.ok(line.includes(`--key-file ${path}`), line);
    assert.match(line, reason);
  });
});

test('a listen address in use or not bindable names its flag, exit 2', async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const taken = `127.0.0.1:${(holder.address() as { port: number }).port}`;
  try {
    const cases: [string[], string, RegExp][] = [
      [['be', '--mode', 'vanilla', '--listen', taken], `--listen ${taken}`, /already in use/],
      [
        ['be', '--key-file', ws.keyFile, '--listen', '127.0.0.1:0', '--store-listen', taken],
        `--store-listen ${taken}`,
        /already in use/,
      ],
      [
        ['is', '--upstream', 'http://127.0.0.1:9', '--listen', '127.0.0.1:0'].concat([
          '--metrics-listen',
          taken,
        ]),
        `--metrics-listen ${taken}`,
        /already in use/,
      ],
      [
        ['fe', '--mode', 'vanilla', '--upstream', 'http://127.0.0.1:9', '--listen', '192.0.2.1:0'],
        '--listen 192.0.2.1:0',
        /no interface of this host has that address/,
      ],
    ];
    await forEachConcurrently(cases, 4, async ([args, named, reason]) => {
      const r = await odb(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const line = assertOneLine(r, 'ODB_ERR_LISTEN');
      assert.ok(line.includes(named), line);
      assert.match(line, reason);
    });
  } finally {
    holder.close();
  }
});

test('a missing --root, bad option values and config-file values: one line, exit 2', async () => {
  const missing = join(ws.dir, 'no-such-dir');
  const root = await odb('be', '--mode', 'vanilla', '--listen', '127.0.0.1:0', '--root', missing);
  assert.equal(root.code, 2);
  assert.ok(assertOneLine(root, 'ODB_ERR_INVALID_OPTION').includes(`--root ${missing}`));
  const config = (name: string, content: unknown): string => {
    const path = join(ws.dir, name);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  const cases: [string[], RegExp][] = [
    [['be', '--listen', '127.0.0.1:99999'], /--listen/],
    [['be', '--symlinks', 'sometimes'], /--symlinks/],
    [['fe', '--upstream', 'http://a:1', '--drain-timeout', 'soon'], /--drain-timeout/],
    [['be', '--config', join(ws.dir, 'absent.json')], /--config .*absent\.json: no such file/],
    [['be', '--config', config('broken.json', '{"listen":')], /--config .*not JSON/],
    [['be', '--config', config('badvalue.json', { storeTtl: 'forever' })], /storeTtl/],
    [
      ['is', '--config', config('badcount.json', { upstream: ['http://a:1'], connections: 0 })],
      /connections/,
    ],
    [['keygen', '--out', join(ws.dir, 'x.key'), '--promote', 'first'], /--promote/],
  ];
  await forEachConcurrently(cases, 4, async ([args, named]) => {
    const r = await odb(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(assertOneLine(r, 'ODB_ERR_INVALID_OPTION'), named);
  });
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
