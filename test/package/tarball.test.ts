// The package as npm ships it, and as an application installs it: the tarball holds what
// package.json's `files` names and nothing of the tests, the dev harness, the benchmarks or the
// examples; installed from it into an empty directory (no TypeScript, no devDependencies: the
// `install` script builds the addon, `prepare` does not run), `--import odb/register` resolves
// there and carries a body as a descriptor between two processes, and `odb demo` prints the
// table the checkout's prints.
//
// It packs with --ignore-scripts: `npm pack` would otherwise run `prepare` (`npm run build`, which
// starts by deleting dist/, the build these tests run from). So the tarball is the build in dist/.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from '../../dev/harness/free-port.js';
import type { StorePing } from '../../src/protocol/store-rpc.js';
import { workspace } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/repo.js';

const run = promisify(execFile);
const ws = workspace('odb-package-');
after(() => ws.cleanup());

/** This process's environment without what an npm script that runs the tests would add. */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)),
);

interface PackedFile {
  readonly path: string;
}
interface Packed {
  readonly filename: string;
  readonly files: readonly PackedFile[];
}

async function npmPack(...args: string[]): Promise<Packed> {
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', ...args], {
    cwd: repoRoot,
    env: cleanEnv,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [packed] = JSON.parse(stdout) as Packed[];
  return packed!;
}

test('npm pack: dist/src, bin, the addon sources and the docs; no test, dev, bench or example code', async () => {
  const files = (await npmPack('--dry-run')).files.map((f) => f.path);
  const unshipped = files.filter((path) =>
    /^(test|dev|bench|examples)\/|^dist\/(?!src\/)|^(build|node_modules)\//.test(path),
  );
  assert.deepEqual(unshipped, [], 'files the package must not ship');
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
    exports: Record<string, string | Record<string, string>>;
  };
  const targets = [
    ...Object.values(pkg.bin),
    ...Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : Object.values(t))),
  ].map((t) => t.replace(/^\.\//, ''));
  const required = [
    'dist/src/stream-mode/register.js',
    'dist/src/index.js',
    'bin/odb',
    'dist/src/cli/main.js', // what bin/odb imports
    'binding.gyp',
    'scripts/build-native.mjs', // the install script
    'native/lazy.cc',
    ...targets,
  ];
  for (const path of required) assert.ok(files.includes(path), `${path} is in the tarball`);
});

/** Runs `command` (its stdout and stderr in one string); rejects with both on failure. */
async function sh(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number },
): Promise<string> {
  try {
    const { stdout, stderr } = await run(command, args, {
      env: cleanEnv,
      maxBuffer: 16 * 1024 * 1024,
      timeout: 180_000,
      ...options,
    });
    return stdout + stderr;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')}: ${e.message}\n${e.stdout}\n${e.stderr}`);
  }
}

/** The demo's table: its header's columns, and each row's mode and size. */
function demoTable(stdout: string): { columns: string[]; rows: string[] } {
  const lines = stdout.split('\n');
  const header = lines.findIndex((line) => line.startsWith('mode '));
  assert.ok(header >= 0, `a table in:\n${stdout}`);
  const rows = [];
  for (const line of lines.slice(header + 2)) {
    if (line.trim() === '') break;
    rows.push(
      line
        .split(/\s{2,}/)
        .slice(0, 2)
        .join(' '),
    );
  }
  return { columns: lines[header]!.split(/\s{2,}/), rows };
}

const demoArgs = [
  'demo',
  '--sizes',
  '256KiB',
  '--duration',
  '200ms',
  '--warmup',
  '0ms',
  '--rate',
  '20',
  '--connections',
  '2',
];

test('installed from its tarball into an empty directory: --import odb/register and odb demo work there', async (t) => {
  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const packed = await npmPack('--pack-destination', ws.dir);
  const tarball = join(ws.dir, packed.filename);
  const app = join(ws.dir, 'app');
  mkdirSync(app);
  // Before installing, the application's directory cannot resolve the entry (docs/stream-mode.md).
  const before = await sh(process.execPath, ['--import', 'odb/register', '-e', '0'], {
    cwd: app,
  }).catch((err: Error) => err.message);
  assert.match(before, /ERR_MODULE_NOT_FOUND[\s\S]*Cannot find package 'odb'/);

  // The checkout's demo runs meanwhile: its table is what the installed one must print.
  const fromCheckout = sh(process.execPath, [join(repoRoot, 'bin/odb'), ...demoArgs], {
    cwd: repoRoot,
  });
  fromCheckout.catch(() => {}); // awaited below
  const installStarted = Date.now();
  const install = await sh(
    'npm',
    ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'],
    { cwd: app },
  );
  t.diagnostic(`npm install of the tarball (addon built): ${Date.now() - installStarted} ms`);
  const installed = join(app, 'node_modules/odb');
  assert.match(install, /> odb@[^ ]+ install\n> node scripts\/build-native\.mjs/);
  assert.doesNotMatch(install, /> odb@[^ ]+ prepare/, 'prepare does not run for a tarball');
  assert.doesNotMatch(install, /WARNING the lazy-buffer addon did not build/);
  assert.ok(existsSync(join(installed, 'build/Release/odb_lazy.node')), 'the addon built');
  for (const devOnly of ['typescript', 'eslint', 'fast-check'])
    assert.ok(!existsSync(join(app, 'node_modules', devOnly)), `${devOnly} is not installed`);
  assert.ok(!existsSync(join(installed, 'dist/test')));

  // (i) Two processes of the application, both under the installed layer: the body crosses as a
  // descriptor (the server's store registers it) and arrives exact.
  const body = ws.file('body.bin', 1024 * 1024, 3);
  const [port, storePort] = [await freePort(), await freePort()];
  const server = spawn(
    process.execPath,
    ['--import', 'odb/register', join(repoRoot, 'examples/stream/be.mjs'), String(port), ws.dir],
    {
      cwd: app,
      env: {
        ...cleanEnv,
        ODB_KEY_FILE: ws.keyFile,
        ODB_LISTEN: String(port),
        ODB_STORE_LISTEN: `127.0.0.1:${storePort}`,
        ODB_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const serverExited = new Promise((resolve) => server.once('exit', resolve));
  try {
    let stderr = '';
    server.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line: ${stderr}`)), 15_000);
      createInterface({ input: server.stdout! }).on('line', (line) => {
        if (!line.startsWith('be: listening')) return;
        clearTimeout(timer);
        resolve();
      });
    });
    const on = stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; features?: object })
      .find((line) => line.msg === 'stream mode on');
    assert.ok(on, `"stream mode on" at info: ${stderr}`);
    assert.ok(on.features, `lazy buffers on (the installed addon): ${stderr}`);
    const maps = readFileSync(`/proc/${server.pid}/maps`, 'utf8');
    assert.ok(maps.includes(join(installed, 'build/Release/odb_lazy.node')), 'the installed addon');

    const client = [
      "import { get } from 'node:http';",
      "import { createHash } from 'node:crypto';",
      'get(process.env.URL, (res) => {',
      "  const hash = createHash('sha256');",
      "  res.on('data', (chunk) => hash.update(chunk));",
      "  res.on('end', () => console.log(res.statusCode, hash.digest('hex')));",
      '});',
    ].join('\n');
    const got = await sh(
      process.execPath,
      ['--import', 'odb/register', '--input-type=module', '-e', client],
      {
        cwd: app,
        env: {
          ...cleanEnv,
          ODB_KEY_FILE: ws.keyFile,
          ODB_CONNECT: `127.0.0.1:${port}`,
          URL: `http://127.0.0.1:${port}/body.bin`,
        },
        timeout: 20_000,
      },
    );
    const expected = createHash('sha256').update(readFileSync(body)).digest('hex');
    assert.equal(got.trim(), `200 ${expected}`);
    const ping = (await (
      await fetch(`http://127.0.0.1:${storePort}/odb/v1/ping`)
    ).json()) as StorePing;
    assert.ok(ping.registered >= 1, 'the body went as a descriptor');
    assert.equal(stderr.includes('"level":40'), false, `no warning: ${stderr}`);
  } finally {
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
    await serverExited;
    clearTimeout(timer);
  }

  // (ii) The installed command's demo prints the checkout's table.
  const demo = await sh(join(app, 'node_modules/.bin/odb'), demoArgs, { cwd: app });
  assert.match(demo, /SHA-256-verified.* 0 errors/);
  const reference = await fromCheckout;
  assert.deepEqual(demoTable(demo), demoTable(reference));
  assert.deepEqual(demoTable(demo).rows, ['vanilla 256 KiB', 'odb 256 KiB']);
  t.diagnostic(`whole test: ${elapsed()}`);
});
