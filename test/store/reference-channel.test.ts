// The reference channel between a holder and an owner's store, over real loopback sockets.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import {
  deriveDescriptor,
  descriptorToText,
  type Descriptor,
} from '../../src/protocol/descriptor.js';
import { MemoryPayload } from '../../src/store/payloads/memory.js';
import { channelProof } from '../../src/protocol/key-proof.js';
import { ReferenceChannels } from '../../src/store/reference-channel.js';
import { eventually, rawExchange } from '../helpers/net.js';
import { startTestStore, testDescriptor } from '../helpers/store.js';

const { key, store, endpoint, port, close } = await startTestStore();
const problems: string[] = [];
const channels = new ReferenceChannels({
  connectTimeoutMs: 2000,
  signingKey: key,
  onProblem: (_endpoint, message) => problems.push(message),
});

after(async () => {
  channels.close();
  await close();
});

let nextId = 1;

/** A counted payload of `length` bytes held by the store, and the descriptor that grants it. */
function counted(length: number, expiresAt = Date.now() + 60_000): Descriptor {
  const payloadId = Buffer.alloc(16);
  payloadId.writeUInt32BE(nextId++);
  const descriptor = testDescriptor(key, endpoint, length, { payloadId, expiresAt });
  const payload = new MemoryPayload({ expectedSize: length });
  payload.append(Buffer.alloc(length, 7));
  payload.finish();
  assert.ok(store.adopt(descriptor, payload, length));
  return descriptor;
}

const held = (d: Descriptor): boolean => store.has(d.payloadId.toString('hex'));

test('retain and release lines apply in order: the payload goes with its last reference', async () => {
  const granted = counted(4096);
  const forwarded = deriveDescriptor(granted, key, 1024, 2048, Date.now() + 60_000);
  // The forwarder retains for the next holder before giving its own reference back.
  channels.send(endpoint, `retain ${descriptorToText(forwarded)}`);
  channels.send(endpoint, `release ${descriptorToText(granted)}`);
  const marker = counted(16);
  channels.send(endpoint, `release ${descriptorToText(marker)}`);
  await eventually(() => !held(marker), 5000, 'the lines to be applied');
  assert.equal(held(granted), true, 'the next holder still has a reference');
  channels.send(endpoint, `release ${descriptorToText(forwarded)}`);
  await eventually(() => !held(granted), 5000, 'the last release');
});

test('a refused line is answered and the lines after it still apply', async () => {
  problems.length = 0;
  const granted = counted(4096);
  const forged = Buffer.from(granted.bytes);
  forged[forged.length - 1]! ^= 1;
  channels.send(endpoint, `retain ${forged.toString('base64url')}`);
  channels.send(endpoint, 'hold everything');
  channels.send(endpoint, `release ${descriptorToText(granted)}`);
  await eventually(() => !held(granted), 5000, 'the release after the refused lines');
  await eventually(() => problems.length >= 2, 5000, 'both refusals');
  assert.match(problems[0]!, /ODB_ERR_BAD_MAC/);
  assert.match(problems[1]!, /ODB_ERR_PROTOCOL .*unknown reference line "hold everything"/);
});

test('a release is honoured after its descriptor expired; a retain is not', async () => {
  problems.length = 0;
  const granted = counted(4096, Date.now() - 1000);
  channels.send(endpoint, `retain ${descriptorToText(granted)}`);
  channels.send(endpoint, `release ${descriptorToText(granted)}`);
  await eventually(() => !held(granted), 5000, 'the expired release');
  await eventually(() => problems.length === 1, 5000, 'the expired retain refused');
  assert.match(problems[0]!, /ODB_ERR_EXPIRED/);
});

/** The upgrade request a holder sends, with a fresh key proof unless `proof` says otherwise. */
function upgradeRequest(proof = channelProof(key, endpoint, Date.now())): string {
  return (
    'GET /odb/v1/references HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\n' +
    `upgrade: odb-references/1\r\nodb-channel-proof: ${proof}\r\n\r\n`
  );
}

test('only a holder of the cluster key opens a channel', async () => {
  const stale = channelProof(key, endpoint, Date.now() - 120_000);
  const otherStore = channelProof(key, '127.0.0.1:1', Date.now());
  for (const proof of ['', 'x', stale, otherStore, `${key.id}.${Date.now()}.${'A'.repeat(43)}`]) {
    const { data, closed } = await rawExchange(port, upgradeRequest(proof), 500);
    assert.match(data.toString('latin1'), /^HTTP\/1\.1 403 /, JSON.stringify(proof));
    assert.equal(closed, true);
  }
});

test('an over-long line closes that channel only; other requests are unaffected', async () => {
  const upgrade = upgradeRequest();
  // Whether the long line arrives in pieces or whole, with its newline.
  for (const tail of ['x'.repeat(10_000), `retain ${'x'.repeat(5000)}\n`]) {
    const { data, closed } = await rawExchange(port, upgrade + tail, 2000);
    const text = data.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 101 /);
    assert.match(text, /error ODB_ERR_PROTOCOL line longer than 4096 bytes\n$/);
    assert.equal(closed, true);
  }
  // A channel that sends nothing but refused lines is closed.
  const flood = await rawExchange(port, upgrade + 'hold everything\n'.repeat(1500), 2000);
  assert.match(flood.data.toString('latin1'), /1000 lines refused in a row\n$/);
  assert.equal(flood.closed, true);
  // Without the upgrade the path says what it wants; an unknown upgrade is refused.
  const plain = await rawExchange(port, 'GET /odb/v1/references HTTP/1.1\r\nhost: x\r\n\r\n');
  assert.match(plain.data.toString('latin1'), /^HTTP\/1\.1 426 /);
  const other = await rawExchange(port, upgrade.replace('odb-references/1', 'websocket'));
  assert.match(other.data.toString('latin1'), /^HTTP\/1\.1 400 /);
  // The channel of the other tests still works.
  const granted = counted(64);
  channels.send(endpoint, `release ${descriptorToText(granted)}`);
  await eventually(() => !held(granted), 5000, 'a release on the existing channel');
});

test('lines to an unreachable owner are reported lost', async () => {
  problems.length = 0;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closedPort = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  channels.send(`127.0.0.1:${closedPort}`, 'release x');
  channels.send(`127.0.0.1:${closedPort}`, 'release y');
  await eventually(() => problems.length === 1, 5000, 'the loss report');
  assert.match(problems[0]!, /^2 reference line\(s\) lost: .*ECONNREFUSED/);
});
