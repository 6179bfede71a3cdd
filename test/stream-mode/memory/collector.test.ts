import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CollectionPacer } from '../../../src/stream-mode/memory/collector.js';

test('collections come after every bytesBetween bytes noted, at most once per interval', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 10_000 });
  let collections = 0;
  const pacer = new CollectionPacer(() => collections++, 100, 250);
  pacer.note(60);
  assert.equal(collections, 0);
  pacer.note(60); // 120 ≥ 100
  assert.equal(collections, 1);
  pacer.note(150); // enough bytes, but too soon: kept for later
  assert.equal(collections, 1);
  t.mock.timers.tick(250);
  pacer.note(1);
  assert.equal(collections, 2);
  pacer.note(99);
  t.mock.timers.tick(250);
  pacer.note(0); // counting started again after the last collection
  assert.equal(collections, 2);
  // Without a GC function (V8 refused --expose-gc) noting is harmless.
  new CollectionPacer(undefined, 1, 0).note(10);
});

test('a collection asked for directly also frees what was noted before it', () => {
  let collections = 0;
  const pacer = new CollectionPacer(() => collections++, 100, 0);
  assert.ok(pacer.available);
  pacer.note(90);
  pacer.collect();
  pacer.note(90); // 90 since the last collection: not yet
  assert.equal(collections, 1);
  pacer.note(10);
  assert.equal(collections, 2);
  assert.equal(new CollectionPacer(undefined).available, false);
});
