// A stream-mode owner whose store budget is spent sends its large writes real: the client still
// gets exact bytes, and the fallback is counted in the store's ping and logged once, never silent.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { StreamPrograms } from '../../dev/harness/stream-chain.js';
import { syntheticSha256 } from '../../src/store/payloads/synthetic.js';
import { workspace } from '../helpers/fixtures.js';
import { get } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { PeerGroup, storePing } from '../helpers/stream.js';

const ws = workspace('odb-budget-');
const peers = new PeerGroup();
const size = 4 * 1024 * 1024;
let c: StreamPrograms;

before(async () => {
  ws.file(`f${size}.bin`, size, 3);
  // Every tier's store holds at most 1 MiB: a 4 MiB body cannot be one payload at the BE.
  c = await peers.startChain({
    keyFile: ws.keyFile,
    filesDir: ws.dir,
    env: { ODB_STORE_BUDGET: '1MiB' },
    logLevel: 'warn',
  });
});

after(async () => {
  await peers.stopAll();
  ws.cleanup();
});

test('writes past the store budget go real: exact bytes, counted and logged once', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await get(c.url(`/f${size}.bin`));
    assert.ok(r.complete);
    assert.equal(r.sha256, syntheticSha256(3, 0, size));
  }
  let overBudget: { writes: number; bytes: number } | undefined;
  await eventually(
    async () => {
      overBudget = (await storePing(c.beStore)).overBudget;
      return (overBudget?.writes ?? 0) > 0;
    },
    5000,
    'the fallback to be counted in the BE store ping',
  );
  assert.ok(overBudget!.bytes >= overBudget!.writes * 64 * 1024, JSON.stringify(overBudget));
  const warnings = c.be
    .stderr()
    .split('\n')
    .filter((line) => line.includes('ODB_STORE_BUDGET'));
  assert.equal(warnings.length, 1, c.be.stderr());
});
