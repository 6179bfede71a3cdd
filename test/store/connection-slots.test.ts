// Fetch slots of one store endpoint: a bounded, first-come wait when all are taken.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isOdbError } from '../../src/core/errors.js';
import { ConnectionSlots, type SlotStats } from '../../src/store/connection-slots.js';

function slots(size: number): { slots: ConnectionSlots; stats: SlotStats } {
  const stats = { queued: 0, queueTimeouts: 0 };
  return { slots: new ConnectionSlots(size, stats), stats };
}

test('connection slots: waiters are served in order as slots come back', async () => {
  const { slots: s, stats } = slots(2);
  const first = await s.acquire(1000);
  const second = await s.acquire(1000);
  const order: string[] = [];
  const third = s.acquire(1000).then((release) => (order.push('third'), release));
  const fourth = s.acquire(1000).then((release) => (order.push('fourth'), release));
  assert.equal(s.waiting, 2);
  first();
  first(); // idempotent: frees one slot only
  const releaseThird = await third;
  assert.equal(s.waiting, 1);
  second();
  (await fourth)();
  releaseThird();
  assert.deepEqual(order, ['third', 'fourth']);
  assert.deepEqual({ taken: s.taken, waiting: s.waiting }, { taken: 0, waiting: 0 });
  assert.deepEqual(stats, { queued: 2, queueTimeouts: 0 });
});

test('connection slots: a wait is bounded (ODB_ERR_STORE_QUEUE_TIMEOUT) and counted', async () => {
  const { slots: s, stats } = slots(1);
  const held = await s.acquire(1000);
  const started = Date.now();
  await assert.rejects(s.acquire(50), (e: unknown) => isOdbError(e, 'ODB_ERR_STORE_QUEUE_TIMEOUT'));
  assert.ok(Date.now() - started < 1000);
  assert.deepEqual(stats, { queued: 1, queueTimeouts: 1 });
  assert.equal(s.waiting, 0);
  held();
  assert.equal(s.taken, 0);
});

test('connection slots: an aborted waiter leaves the queue without taking a slot', async () => {
  const { slots: s } = slots(1);
  const held = await s.acquire(1000);
  const controller = new AbortController();
  const waiting = s.acquire(1000, controller.signal);
  controller.abort();
  await assert.rejects(waiting, (e: unknown) => isOdbError(e, 'ODB_ERR_FETCH_ABORTED'));
  assert.equal(s.waiting, 0);
  held();
  assert.equal(s.taken, 0);
  await assert.rejects(s.acquire(1000, controller.signal), (e: unknown) =>
    isOdbError(e, 'ODB_ERR_FETCH_ABORTED'),
  );
});
