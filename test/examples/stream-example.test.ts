// docs/stream-mode.md, "Try it", runs as written: the shell block after `<!-- example: three-tier -->`
// is taken from the page and run with bash from the checkout's root (its mktemp directory lands in
// a temporary directory of this test, through TMPDIR). Its three plain programs
// (examples/stream) must carry a large file exactly, the intermediate must see descriptors only,
// and every process the block started is stopped by its pid.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { processIo } from '../../dev/harness/node-program.js';
import type { StorePing } from '../../src/protocol/store-rpc.js';
import { get } from '../helpers/http.js';
import { repoRoot } from '../helpers/repo.js';

/** The loopback ports the block uses: FE, BE, BE's store, IS, IS's store. */
const ports = [8000, 8080, 8081, 8090, 8091];
const pidsLine = 'stream-example-pids';

/** The documented block, exactly as docs/stream-mode.md has it. */
function documentedBlock(): string {
  const page = readFileSync(join(repoRoot, 'docs/stream-mode.md'), 'utf8');
  const block = /<!-- example: three-tier -->\n\n```sh\n([\s\S]*?)\n```/.exec(page)?.[1];
  assert.ok(block, 'docs/stream-mode.md: a ```sh block right after <!-- example: three-tier -->');
  return block;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function ping(port: number): Promise<StorePing> {
  const res = await fetch(`http://127.0.0.1:${port}/odb/v1/ping`);
  return (await res.json()) as StorePing;
}

const scratch = mkdtempSync(join(tmpdir(), 'odb-stream-example-'));
let shell: ChildProcess | undefined;

after(() => {
  // Whatever is left of the block's processes (a failed assertion before they were stopped):
  // bash leads its own process group, and its background jobs stay in it.
  if (shell?.pid !== undefined && shell.exitCode === null && shell.signalCode === null) {
    try {
      process.kill(-shell.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(scratch, { recursive: true, force: true });
});

test('docs/stream-mode.md "Try it": 16 MiB arrive exact through be.mjs ← is.mjs ← fe.mjs, the IS relays descriptors only', async () => {
  for (const port of ports)
    assert.ok(await portIsFree(port), `port ${port}, which the documented block uses, is taken`);
  // The block as documented, then: name the jobs it left running, wait for them, and exit with a
  // failed status among theirs, if any.
  const epilogue = [
    'pids=$(jobs -p)',
    `echo ${pidsLine} $pids`,
    'status=0',
    'for pid in $pids; do wait "$pid" || status=$?; done',
    'exit $status',
  ];
  const script = `${documentedBlock()}\n${epilogue.join('\n')}\n`;
  const bash = spawn('bash', ['-c', script], {
    cwd: repoRoot,
    env: { ...process.env, TMPDIR: scratch },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  shell = bash;
  const exited = new Promise<number | null>((resolve) => bash.once('exit', resolve));
  let stdout = '';
  let stderr = '';
  bash.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const pids = await new Promise<number[]>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the block did not finish in 15 s:\n${stdout}\n${stderr}`)),
      15_000,
    );
    createInterface({ input: bash.stdout! }).on('line', (line) => {
      stdout += `${line}\n`;
      if (!line.startsWith(`${pidsLine} `)) return;
      clearTimeout(timer);
      resolve(line.split(' ').slice(1).map(Number));
    });
    void exited.then((code) =>
      reject(new Error(`the block exited (${code}) early:\n${stdout}\n${stderr}`)),
    );
  });
  const programs = pids.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  assert.deepEqual(
    programs.map((cmdline) => /examples\/stream\/(\w+)\.mjs/.exec(cmdline)?.[1]),
    ['be', 'is', 'fe'],
    'the block leaves the three programs running',
  );
  for (const cmdline of programs) assert.ok(cmdline.includes('--import'), cmdline);
  assert.equal(stderr, '', 'nothing on standard error');

  // What the block printed: the hash through the chain equals the file's, and the two pings.
  const [workDir, ...others] = readdirSync(scratch);
  assert.equal(others.length, 0, 'one mktemp directory');
  const file = readFileSync(join(scratch, workDir!, 'big.bin'));
  assert.equal(file.length, 16 * 1024 * 1024);
  const fileSha256 = createHash('sha256').update(file).digest('hex');
  const hashes = [...stdout.matchAll(/^([0-9a-f]{64}) {2}-$/gm)].map((m) => m[1]);
  assert.deepEqual(hashes, [fileSha256, fileSha256], stdout);
  assert.match(stdout, /^fe: GET \/big\.bin 200 16777216 B /m);
  const pings = [...stdout.matchAll(/^\{"ok":true.*\}$/gm)].map(
    (m) => JSON.parse(m[0]) as StorePing,
  );
  assert.equal(pings.length, 2, stdout);
  const [bePing, isPing] = pings as [StorePing, StorePing];
  assert.equal(bePing.endpoint, '127.0.0.1:8081');
  assert.ok(bePing.registered >= 1, 'the BE sent its writes as descriptors');
  assert.equal(isPing.endpoint, '127.0.0.1:8091');
  assert.equal(isPing.registered, 0, 'the IS made no payload of its own');
  assert.equal(isPing.faultBytes, 0, 'the IS fetched nothing');
  assert.equal(isPing.fetchFailures, 0);

  // Once more from here, counting what the IS reads (the kernel's count, sockets included).
  const [, isPid] = pids as [number, number, number];
  const readBefore = processIo(isPid).read;
  const again = await get('http://127.0.0.1:8000/big.bin');
  const isRead = processIo(isPid).read - readBefore;
  assert.ok(again.complete);
  assert.equal(again.sha256, fileSha256);
  assert.ok(isRead < file.length / 100, `the IS read ${isRead} bytes for a 16 MiB body`);
  const isAfter = await ping(8091);
  assert.equal(isAfter.faultBytes, 0);
  assert.equal(isAfter.registered, 0);
  assert.ok(
    (await ping(8081)).registered > bePing.registered,
    'the second request went as descriptors too',
  );

  // Stop what the block started, by pid; each drains (no SIGTERM handler of its own) and exits 0.
  const t0 = Date.now();
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const code = await Promise.race([
    exited,
    new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 12_000).unref()),
  ]);
  assert.equal(code, 0, `the programs' exit status, ${Date.now() - t0} ms after SIGTERM`);
  for (const pid of pids) assert.ok(!alive(pid), `pid ${pid} is gone`);
  for (const port of ports) assert.ok(await portIsFree(port), `port ${port} is free again`);
});
