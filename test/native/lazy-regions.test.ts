// Lazy regions (native/lazy.cc) on the real kernel: the addon reports the regions whose Buffers
// were collected (takeGone) after a scavenge alone, so that a holder gives references back
// without the full collections that cost a tier its optimised code.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { loadLazyBinding, type LazyBinding, type LazyFeatures } from '../../src/native/binding.js';
import { obtainGc } from '../../src/stream-mode/memory/collector.js';

const loaded = loadLazyBinding();
const binding: LazyBinding | undefined = 'binding' in loaded ? loaded.binding : undefined;
let skip: string | false = binding ? false : `no addon: ${'reason' in loaded ? loaded.reason : ''}`;
let features: LazyFeatures | undefined;
try {
  features = binding?.init(() => {});
} catch (err) {
  skip = `userfaultfd unavailable: ${(err as Error).message}`;
}
const gc = obtainGc();
if (!gc) skip ||= 'V8 refused --expose-gc';

/** Creates `count` regions and keeps none of their Buffers. */
function dropRegions(count: number, length: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(binding!.createRegion(length, `test ${i}`)[1]);
  return ids;
}

test(
  'regions dropped young are reported after scavenges, each once; a held one is not',
  { skip },
  async () => {
    binding!.takeGone(); // whatever an earlier collection left
    const held = binding!.createRegion(64 * 1024, 'held');
    const dropped = dropRegions(50, 1024 * 1024);
    gc!({ type: 'minor' });
    gc!({ type: 'minor' });
    // Finalizers run in immediates after the collection.
    const taken: number[] = [];
    for (let i = 0; i < 50 && taken.length < dropped.length; i++) {
      await sleep(10);
      taken.push(...binding!.takeGone());
    }
    assert.deepEqual(
      taken.sort((a, b) => a - b),
      dropped,
    );
    assert.ok(!taken.includes(held[1]));
    assert.equal(held[0].length, 64 * 1024);
    assert.deepEqual(binding!.takeGone(), [], 'each id is taken once');
  },
);

test(
  'freeing regions gives V8 no rise in external memory to count as allocation',
  { skip },
  async () => {
    // V8 takes a region's whole length off its counter when it frees the Buffer. Had the addon
    // added the unfilled bytes back, the counter would rise by them above the low point the
    // free left, and V8 reads such a rise as allocation since its last full collection.
    binding!.takeGone(); // whatever an earlier collection left
    // Node 20's V8 hears of filled bytes only; later ones count the whole length (binding.ts).
    assert.equal(
      features!.externalMemory,
      process.versions.node.startsWith('20.') ? 'filled' : 'whole',
    );
    const dropped = new Set(dropRegions(30, 1024 * 1024));
    let low = binding!.externalMemoryCounter();
    gc!({ type: 'minor' });
    gc!({ type: 'minor' });
    let gone = 0;
    for (let i = 0; i < 200 && gone < 30; i++) {
      low = Math.min(low, binding!.externalMemoryCounter());
      await new Promise<void>((resolve) => setImmediate(resolve));
      gone += binding!.takeGone().filter((id) => dropped.has(id)).length;
    }
    assert.equal(gone, 30, 'the 30 regions were collected');
    await sleep(20);
    const rise = binding!.externalMemoryCounter() - low;
    assert.ok(rise < 1024 * 1024, `the counter rose ${rise} bytes above its low point`);
  },
);
