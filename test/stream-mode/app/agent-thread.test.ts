// The stream-mode agent (src/stream-mode/agent/worker.ts) started in this process by startAgent
// (src/stream-mode/app/agent-thread.ts), as StreamRuntime.start does: it says `ready` once its
// store listens, answers a keyed ping there, serves a payload registered through its messages
// byte-exact, and drops it once its reference is given back. The messages are those of agent/protocol.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { after, before, test } from 'node:test';
import { formatKeyFile, generateClusterKey, Keyring } from '../../../src/core/keys/keyring.js';
import {
  descriptorToText,
  payloadIdHex,
  signDescriptor,
} from '../../../src/protocol/descriptor.js';
import { checkKeyProof } from '../../../src/protocol/key-proof.js';
import { StoreClient } from '../../../src/store/client.js';
import type {
  AgentEvent,
  AgentMessage,
  AgentSettings,
} from '../../../src/stream-mode/agent/protocol.js';
import { startAgent } from '../../../src/stream-mode/app/agent-thread.js';
import { OwnPayloadAllocator } from '../../../src/stream-mode/memory/own-payload.js';
import { sha256 } from '../../helpers/net.js';

const key = generateClusterKey();
const keyring = new Keyring([key]);
const settings: AgentSettings = {
  keyText: formatKeyFile([key]),
  storeHost: '127.0.0.1',
  storePort: 0,
  storeAdvertise: undefined,
  budgetBytes: 64 * 1024 * 1024,
  ttlMs: 30_000,
  fetchTimeoutMs: 2000,
  fetchRetries: 1,
  // Own payloads in SharedArrayBuffers: the same whether or not the addon was built here.
  native: false,
};

let agent: Worker;
let ready: Extract<AgentEvent, { type: 'ready' }>;
const events: AgentEvent[] = [];
const client = new StoreClient({ fetchTimeoutMs: 2000 });

/** The next event of `type` from the agent (one already received counts). */
function next<T extends AgentEvent['type']>(
  type: T,
  match: (event: Extract<AgentEvent, { type: T }>) => boolean = () => true,
  timeoutMs = 5000,
): Promise<Extract<AgentEvent, { type: T }>> {
  const seen = (e: AgentEvent): e is Extract<AgentEvent, { type: T }> =>
    e.type === type && match(e as Extract<AgentEvent, { type: T }>);
  const already = events.find(seen);
  if (already) {
    events.splice(events.indexOf(already), 1);
    return Promise.resolve(already);
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.off('message', listener);
      reject(new Error(`no ${type} event from the agent within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (event: AgentEvent): void => {
      if (!seen(event)) return;
      clearTimeout(timer);
      agent.off('message', listener);
      events.splice(events.indexOf(event), 1);
      resolve(event);
    };
    agent.on('message', listener);
  });
}

const post = (message: AgentMessage): void => agent.postMessage(message);

before(async () => {
  agent = startAgent(settings);
  agent.on('message', (event: AgentEvent) => events.push(event));
  agent.on('error', (err) => assert.fail(`agent failed: ${String(err)}`));
  ready = await next('ready', () => true, 15_000);
});

after(async () => {
  await client.close();
  await agent.terminate();
});

test('the agent says ready once its store listens, with the endpoint descriptors will name', () => {
  assert.match(ready.endpoint, /^127\.0\.0\.1:\d+$/);
  assert.notEqual(ready.endpoint, '127.0.0.1:0');
  assert.equal(ready.bound, ready.endpoint);
  // ODB_NATIVE=off: no lazy buffers, and the agent says why.
  assert.equal(ready.lazy, null);
  assert.match(String(ready.lazyReason), /addon/);
});

test("the agent's store answers a ping with a proof of this cluster key", async () => {
  const challenge = randomBytes(16).toString('base64url');
  const ping = await client.ping(ready.endpoint, challenge);
  assert.equal(ping.ok, true);
  assert.equal(ping.keyId, key.id);
  assert.equal(checkKeyProof(keyring, challenge, ping.keyId, ping.proof), 'ok');
  assert.equal(ping.lazyRegions, 0, 'the agent adds its lazy-buffer counters');
});

test('a payload registered through the agent is fetched byte-exact, and dropped with its reference', async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 1);
  const memory = new OwnPayloadAllocator(undefined).allocate(bytes.length);
  memory.write(0, bytes);
  const descriptor = signDescriptor(
    {
      endpoint: ready.endpoint,
      payloadId: randomBytes(16),
      offset: 0,
      length: bytes.length,
      totalSize: bytes.length,
      expiresAt: Date.now() + 30_000,
      open: false,
    },
    key,
  );
  post({ type: 'register', descriptor: descriptor.bytes, payload: memory.handOff(bytes.length) });
  post({ type: 'store-activity', requestId: 1 });
  const held = await next('store-activity', (e) => e.requestId === 1);
  assert.equal(held.entries, 1);
  const chunks: Buffer[] = [];
  const into = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  await client.fetch(descriptor, { start: () => into });
  const fetched = Buffer.concat(chunks);
  assert.equal(fetched.length, bytes.length);
  assert.equal(sha256(fetched), sha256(bytes));
  // A counted entry outlives its fetches: it goes with the one reference its descriptor grants.
  post({ type: 'store-activity', requestId: 2 });
  const served = await next('store-activity', (e) => e.requestId === 2);
  assert.equal(served.entries, 1);
  assert.equal(served.fetches, held.fetches + 1);
  post({ type: 'release', descriptor: descriptorToText(descriptor) });
  // The agent tells the application thread the payload left and its budget is free.
  const dropped = await next('dropped', (e) => e.id === payloadIdHex(descriptor));
  assert.equal(dropped.charge, bytes.length);
  post({ type: 'store-activity', requestId: 3 });
  assert.equal((await next('store-activity', (e) => e.requestId === 3)).entries, 0);
});
