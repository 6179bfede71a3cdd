// Symbolic links under the back end's --root: by default followed only when they stay in the
// root (a link to /etc is a 404), `none` refuses every link, `any` is the old behaviour; a link
// swapped while requests run never serves bytes from outside the root.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startChain, type Chain } from '../../dev/harness/chain.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';
import { workspace } from '../helpers/fixtures.js';
import { get } from '../helpers/http.js';
import { sha256 } from '../helpers/net.js';
import { startBackendProcess } from '../helpers/tiers.js';

const ws = workspace();
const root = join(ws.dir, 'root');
const outsideDir = join(ws.dir, 'outside');
const fileBytes = 256 * 1024;
let insideSha: string;
let outsideSha: string;
let odb: Chain;
let none: OdbProcess;
let any: OdbProcess;

before(async () => {
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(join(root, 'dir'));
  mkdirSync(outsideDir);
  // Same size inside and outside, different bytes: a response tells which one it served.
  insideSha = sha256(readFileSync(ws.file('root/inside.bin', fileBytes, 1)));
  ws.file('root/sub/f.bin', fileBytes, 1);
  ws.file('root/dir/f.bin', fileBytes, 1);
  outsideSha = sha256(readFileSync(ws.file('outside/f.bin', fileBytes, 2)));
  ws.file('outside.bin', fileBytes, 2);
  symlinkSync('/etc', join(root, 'etc'));
  symlinkSync('../outside.bin', join(root, 'out.bin'));
  symlinkSync(outsideDir, join(root, 'outdir'));
  symlinkSync('inside.bin', join(root, 'in-link.bin'));
  symlinkSync(join(root, 'sub'), join(root, 'sub-link'));
  // The root itself reached through a link (a deployment's `current -> releases/v2`).
  symlinkSync(root, join(ws.dir, 'current'));
  symlinkSync(ws.keyFile, join(root, 'cluster.key'));
  const be = (policy: string[]): Promise<OdbProcess> =>
    startBackendProcess({
      root: join(ws.dir, 'current'),
      metrics: true,
      logLevel: 'info',
      args: policy,
    });
  [odb, none, any] = await Promise.all([
    // Default policy, files through the store as descriptors (FE fetches them).
    startChain({
      mode: 'odb',
      root: join(ws.dir, 'current'),
      keyFile: ws.keyFile,
      intermediates: 0,
      logLevel: 'warn',
      beArgs: ['--threshold', '4096'],
    }),
    be(['--symlinks', 'none']),
    be(['--symlinks', 'any', '--key-file', ws.keyFile]),
  ]);
});

after(async () => {
  await Promise.all([odb?.stop(), none?.stop(), any?.stop()]);
  ws.cleanup();
});

async function status(url: string): Promise<[number, string]> {
  const r = await get(url, { agent: false });
  return [r.status, r.status === 200 ? r.sha256 : ''];
}

test('default (inside): links that leave the root are 404, links within it are served byte-exact', async () => {
  const url = (path: string): string => odb.url(path);
  assert.deepEqual(await status(url('/etc/passwd')), [404, '']);
  assert.deepEqual(await status(url('/etc/shadow')), [404, '']);
  assert.deepEqual(await status(url('/out.bin')), [404, '']);
  assert.deepEqual(await status(url('/outdir/f.bin')), [404, '']);
  assert.deepEqual(await status(url('/in-link.bin')), [200, insideSha]);
  assert.deepEqual(await status(url('/sub-link/f.bin')), [200, insideSha]);
  assert.deepEqual(await status(url('/inside.bin')), [200, insideSha]);
  const metrics = await scrape(odb.be.addresses.metrics!);
  assert.equal(metricValue(metrics, 'odb_files_refused_total', { reason: 'symlink' }), 4);
  assert.ok(
    metricValue(metrics, 'odb_descriptor_responses_total') >= 3,
    'files went as descriptors',
  );
});

test('--symlinks none refuses every link under the root; any follows them anywhere', async () => {
  const base = (p: OdbProcess, path: string): string => `http://${p.addresses.http}${path}`;
  for (const path of ['/etc/passwd', '/out.bin', '/in-link.bin', '/sub-link/f.bin']) {
    assert.deepEqual(await status(base(none, path)), [404, ''], path);
  }
  // The link in --root's own path is not "under" the root: still served.
  assert.deepEqual(await status(base(none, '/inside.bin')), [200, insideSha]);
  assert.deepEqual(await status(base(none, '/sub/f.bin')), [200, insideSha]);
  // The old behaviour, for those who want it.
  assert.deepEqual(await status(base(any, '/etc/passwd')), [
    200,
    sha256(readFileSync('/etc/passwd')),
  ]);
  assert.deepEqual(await status(base(any, '/out.bin')), [200, outsideSha]);
  assert.deepEqual(await status(base(any, '/in-link.bin')), [200, insideSha]);
  // Except the key file, whatever the name or link it is reached by.
  assert.deepEqual(await status(base(any, '/cluster.key')), [404, '']);
  const metrics = await scrape(any.addresses.metrics!);
  assert.equal(metricValue(metrics, 'odb_files_refused_total', { reason: 'key_file' }), 1);
});

test('a key file inside --root is never served, and the back end warns about it', async () => {
  const be = await startOdbProcess('be', [
    'be',
    '--listen',
    '127.0.0.1:0',
    '--store-listen',
    '127.0.0.1:0',
    '--key-file',
    ws.keyFile,
    '--root',
    ws.dir,
  ]);
  try {
    const url = `http://${be.addresses.http}`;
    assert.equal(ws.keyFile, join(ws.dir, 'cluster.key'));
    assert.deepEqual(await status(`${url}/cluster.key`), [404, '']);
    assert.deepEqual(await status(`${url}/root/inside.bin`), [200, insideSha]);
    assert.ok(be.logs.some((l) => /key file lies under --root/.test(l.msg ?? '')));
  } finally {
    await be.stop();
  }
});

test('links swapped to the outside while requests run: never a byte from outside the root', async () => {
  // A separate process flips a file link and a directory of the path between inside and outside
  // targets as fast as it can, while this one keeps asking for both.
  const flipper = spawn(
    process.execPath,
    [
      '-e',
      `
      const fs = require('node:fs');
      const [root, outsideDir] = process.argv.slice(1);
      const until = Date.now() + 60000;
      let n = 0;
      while (Date.now() < until) {
        const tmp = root + '/.race.tmp';
        fs.rmSync(tmp, { force: true });
        fs.symlinkSync(n % 2 ? 'inside.bin' : outsideDir + '/f.bin', tmp);
        fs.renameSync(tmp, root + '/race.bin');
        if (n % 2) {
          fs.renameSync(root + '/dir', root + '/dir.real');
          fs.symlinkSync(outsideDir, root + '/dir');
        } else if (fs.existsSync(root + '/dir.real')) {
          fs.unlinkSync(root + '/dir');
          fs.renameSync(root + '/dir.real', root + '/dir');
        }
        n++;
      }
      `,
      root,
      outsideDir,
    ],
    { stdio: 'ignore' },
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const seen = { served: 0, refused: 0, cut: 0 };
  try {
    const deadline = Date.now() + 2500;
    const insideBytes = readFileSync(join(root, 'inside.bin'));
    const ask = async (url: string): Promise<void> => {
      while (Date.now() < deadline) {
        const r = await get(url, { agent, keepBody: true }).catch(() => undefined);
        if (r?.status === 404) {
          seen.refused++;
          continue;
        }
        // A file that changed under a checked name: a 5xx (the front end's 502, or the back
        // end's 500 when the request was re-sent without the offer) or a cut body, never other
        // bytes.
        if (!r || r.status >= 500) {
          seen.cut++;
          continue;
        }
        assert.equal(r.status, 200, url);
        assert.ok(
          r.body!.equals(insideBytes.subarray(0, r.bytes)),
          `${url}: bytes from outside the root`,
        );
        if (r.complete) seen.served++;
        else seen.cut++;
      }
    };
    await Promise.all(
      [odb.url('/race.bin'), odb.url('/dir/f.bin')].flatMap((url) => [ask(url), ask(url)]),
    );
    assert.ok(seen.served > 0 && seen.refused > 0, JSON.stringify(seen));
  } finally {
    agent.destroy();
    flipper.kill();
  }
});
