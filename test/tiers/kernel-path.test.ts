// The kernel data path through real `odb be`, `odb is` and `odb fe` processes: the store sends
// file payloads by sendfile and the front end splices them into its clients' sockets. Exact
// bytes at every size, keep-alive across kernel and JavaScript deliveries, each way a delivery
// can fail mid-body (client gone, store gone, file changed) ending in a cut, never in wrong
// bytes, a slow client costing no memory, and ODB_NATIVE=off giving the same bytes by JavaScript.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { startChain } from '../../dev/harness/chain.js';
import { metricValue, scrape } from '../../src/demo/prometheus.js';
import { rssBytes } from '../../src/demo/proc-stat.js';
import { transferEngine } from '../../src/native/transfer.js';
import { odbChainForFile } from '../helpers/chain.js';
import { get } from '../helpers/http.js';
import { eventually, sha256 } from '../helpers/net.js';

const loaded = transferEngine(true);
const skip =
  'engine' in loaded ? false : `no transfer engine: ${'reason' in loaded ? loaded.reason : ''}`;
const files = new Map<string, Buffer>();
const file = (name: string, size: number): string => {
  files.set(name, randomBytes(size));
  return name;
};
const sizes = { zero: 0, one: 1, page: 4096, mib: 1 << 20, big: 200 * 1024 * 1024 };
const names = Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, file(`${k}.bin`, v)]));
const shared = odbChainForFile({ beArgs: ['--threshold', '0'] });

/** A chain of its own (a test that kills a tier or changes its environment), every body a descriptor. */
function ownChain(env?: Record<string, string>): ReturnType<typeof startChain> {
  return startChain({
    mode: 'odb',
    root: shared.ws.dir,
    keyFile: shared.ws.keyFile,
    logLevel: 'warn',
    beArgs: ['--threshold', '0'],
    env,
  });
}
const write = (): void => {
  for (const [name, data] of files) writeFileSync(join(shared.ws.dir, name), data);
};

async function counts(): Promise<{ spliced: number; javascript: number; sendfile: number }> {
  const fe = await scrape(shared.chain.fe.addresses.metrics!);
  const be = await scrape(shared.chain.be.addresses.metrics!);
  return {
    spliced: metricValue(fe, 'odb_deliveries_total', { path: 'kernel' }),
    javascript: metricValue(fe, 'odb_deliveries_total', { path: 'javascript' }),
    sendfile: metricValue(be, 'odb_store_sends_total', { path: 'kernel' }),
  };
}

test(
  'every size arrives byte-exact by sendfile and splice (0 B to 200 MiB)',
  { skip },
  async () => {
    write();
    const before = await counts();
    for (const [key, name] of Object.entries(names)) {
      const res = await get(shared.chain.url(`/${name}`), {});
      assert.equal(res.status, 200, key);
      assert.equal(res.sha256, sha256(files.get(name)!), `${key}: bytes`);
      assert.equal(Number(res.headers['content-length']), sizes[key as keyof typeof sizes]);
    }
    const now = await counts();
    assert.equal(now.spliced - before.spliced, Object.keys(names).length, 'every delivery spliced');
    assert.equal(
      now.sendfile - before.sendfile,
      Object.keys(names).length,
      'every send by sendfile',
    );
  },
);

test(
  '1000 keep-alive requests on one client connection, spliced and relayed bodies mixed',
  { skip },
  async () => {
    // The default threshold (256 KiB): 4 KiB bodies are relayed by JavaScript, 1 MiB ones spliced.
    const chain = await startChain({
      mode: 'odb',
      root: shared.ws.dir,
      keyFile: shared.ws.keyFile,
      logLevel: 'warn',
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      write();
      for (let i = 0; i < 1000; i++) {
        const name = i % 2 === 0 ? names.page! : names.mib!;
        const res = await get(chain.url(`/${name}`), { agent });
        assert.equal(res.status, 200);
        assert.equal(res.reusedSocket, i > 0, `request ${i} on the one connection`);
        assert.equal(res.sha256, sha256(files.get(name)!), `request ${i}`);
      }
      const fe = await scrape(chain.fe.addresses.metrics!);
      assert.equal(metricValue(fe, 'odb_deliveries_total', { path: 'kernel' }), 500);
    } finally {
      agent.destroy();
      await chain.stop();
    }
  },
);

test(
  'a client that goes away mid-body: the FE serves on and the payload is released',
  { skip },
  async () => {
    write();
    const { port, host } = splitAddress(shared.chain.fe.addresses.http!);
    for (let i = 0; i < 5; i++) {
      const socket = connect(port, host);
      socket.write(`GET /${names.big} HTTP/1.1\r\nhost: x\r\n\r\n`);
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got > 8 * 1024 * 1024) socket.destroy();
      });
      await once(socket, 'close');
    }
    const res = await get(shared.chain.url(`/${names.mib}`), {});
    assert.equal(res.sha256, sha256(files.get(names.mib!)!));
    // The store releases what the aborted deliveries held once their fetches end.
    await eventually(
      async () => {
        const be = await scrape(shared.chain.be.addresses.metrics!);
        return metricValue(be, 'odb_store_entries') === 0;
      },
      10_000,
      'the aborted deliveries released',
    );
  },
);

test(
  'a slow client: memory of the FE and the BE stays flat while 200 MiB trickle',
  { skip },
  async () => {
    write();
    const { port, host } = splitAddress(shared.chain.fe.addresses.http!);
    const feBefore = rssBytes(shared.chain.fe.pids()[0]!);
    const beBefore = rssBytes(shared.chain.be.pids()[0]!);
    const socket = connect(port, host);
    socket.write(`GET /${names.big} HTTP/1.1\r\nhost: x\r\n\r\n`);
    // Read 64 KiB every 20 ms for 2 s: the chain holds what the sockets hold, not the payload.
    socket.pause();
    let read = 0;
    for (let t = 0; t < 100; t++) {
      await new Promise((r) => setTimeout(r, 20));
      let chunk: Buffer | null;
      while (read < (t + 1) * 65536 && (chunk = socket.read() as Buffer | null))
        read += chunk.length;
    }
    const feGrowth = rssBytes(shared.chain.fe.pids()[0]!) - feBefore;
    const beGrowth = rssBytes(shared.chain.be.pids()[0]!) - beBefore;
    socket.destroy();
    assert.ok(read > 0);
    assert.ok(feGrowth < 32 * 1024 * 1024, `FE grew ${feGrowth} bytes`);
    assert.ok(beGrowth < 32 * 1024 * 1024, `BE grew ${beGrowth} bytes`);
  },
);

test(
  'a file written to in place during the send: the client is cut short, never served a clean body',
  { skip },
  async () => {
    write();
    const path = join(shared.ws.dir, names.big!);
    const res = await get(shared.chain.url(`/${names.big}`), {
      // While the first bytes arrive, most of the file is still to be sent.
      onFirstBytes: () => {
        const writer = openSync(path, 'r+');
        writeSync(writer, Buffer.from('changed'), 0, 7, sizes.big - 1000);
        closeSync(writer);
      },
      stallMs: 200,
    });
    assert.equal(res.status, 200);
    assert.equal(res.complete, false, 'cut short of its Content-Length');
    assert.ok(res.bytes < sizes.big, `${res.bytes} of ${sizes.big} bytes`);
  },
);

test('the store dying mid-body cuts the client short', { skip }, async () => {
  const chain = await ownChain();
  try {
    write();
    const res = await get(chain.url(`/${names.big}`), {
      onFirstBytes: () => process.kill(chain.be.pids()[0]!, 'SIGKILL'),
      stallMs: 100,
    });
    assert.equal(res.status, 200);
    assert.equal(res.complete, false, 'cut short of its Content-Length');
    assert.ok(res.bytes < sizes.big, `${res.bytes} of ${sizes.big} bytes`);
    // The FE serves on: the next request gets a whole answer (a 502, its store being gone).
    const next = await get(chain.url(`/${names.mib}`));
    assert.equal(next.complete, true);
  } finally {
    await chain.stop();
  }
});

test('ODB_NATIVE=off: the same bytes by JavaScript, counted as such', async () => {
  const chain = await ownChain({ ODB_NATIVE: 'off' });
  try {
    write();
    for (const name of [names.one!, names.mib!]) {
      const res = await get(chain.url(`/${name}`), {});
      assert.equal(res.sha256, sha256(files.get(name)!));
    }
    const fe = await scrape(chain.fe.addresses.metrics!);
    const be = await scrape(chain.be.addresses.metrics!);
    assert.equal(metricValue(fe, 'odb_deliveries_total', { path: 'kernel' }), 0);
    assert.equal(
      metricValue(fe, 'odb_deliveries_total', { path: 'javascript', reason: 'disabled' }),
      2,
    );
    assert.equal(
      metricValue(be, 'odb_store_sends_total', { path: 'javascript', reason: 'disabled' }),
      2,
    );
  } finally {
    await chain.stop();
  }
});

function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

test('a client that pipelines and hangs up: the queued delivery ends, its store connection slot comes back', async () => {
  write();
  const { hostname, port } = new URL(shared.chain.url('/'));
  const inUse = async (): Promise<number> =>
    metricValue(await scrape(shared.chain.fe.addresses.metrics!), 'odb_store_connections_in_use');
  for (let i = 0; i < 4; i++) {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.on('error', () => {});
    const request = `GET /${names.mib} HTTP/1.1\r\nHost: x\r\n\r\n`;
    socket.write(request + request);
    // Some of the first response, then gone: the second waits behind it, without a socket.
    let seen = 0;
    for await (const chunk of socket) {
      seen += (chunk as Buffer).length;
      if (seen >= 1000) break;
    }
    socket.destroy();
  }
  await eventually(async () => (await inUse()) === 0, 10_000, 'every store connection slot back');
  const res = await get(shared.chain.url(`/${names.mib}`), {});
  assert.equal(res.sha256, sha256(files.get(names.mib!)!));
});
