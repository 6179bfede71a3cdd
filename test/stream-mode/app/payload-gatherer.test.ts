import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { loadLazyBinding } from '../../../src/native/binding.js';
import { httpBodyLength, httpHeadLength } from '../../../src/stream-mode/app/http-head.js';
import { OwnPayloadAllocator } from '../../../src/stream-mode/memory/own-payload.js';
import {
  PayloadGatherer,
  type GatheredPayload,
} from '../../../src/stream-mode/app/payload-gatherer.js';

const never = (): void => assert.fail('the wait ended');
const loaded = loadLazyBinding();
const native = 'binding' in loaded ? loaded.binding : undefined;
/** Both kinds of own-payload memory: the addon's (when built) and the SharedArrayBuffer fallback. */
const allocators = [
  ...(native ? [['native memory', new OwnPayloadAllocator(native)] as const] : []),
  ['shared memory', new OwnPayloadAllocator(undefined)] as const,
];

/** The gathered bytes, as the store would serve them; the memory is given back. */
function bytesOf(gathered: GatheredPayload): Buffer {
  return gathered.memory.reclaim(gathered.length);
}

for (const [kind, allocator] of allocators) {
  test(`gathered chunks come out as one payload, in order, within the cap (${kind})`, () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 20 }),
        fc.integer({ min: 1, max: 1000 }),
        (chunks, maxBytes) => {
          const gatherer = new PayloadGatherer(allocator, maxBytes, 1000, never);
          const payloads: Buffer[] = [];
          const take = (): void => {
            const gathered = gatherer.take();
            if (gathered) payloads.push(bytesOf(gathered));
          };
          const alone: Buffer[] = [];
          for (const chunk of chunks) {
            if (gatherer.add(chunk)) continue;
            take();
            if (!gatherer.add(chunk)) alone.push(Buffer.from(chunk)); // larger than any payload
          }
          take();
          assert.equal(gatherer.gathered, 0);
          for (const payload of payloads) assert.ok(payload.length <= maxBytes);
          assert.ok(alone.every((chunk) => chunk.length > maxBytes));
          const gatheredChunks = chunks.filter((c) => c.length <= maxBytes);
          assert.deepEqual(Buffer.concat(payloads), Buffer.concat(gatheredChunks));
        },
      ),
    );
  });

  test(`an announced size is allocated at once; a short payload comes out at its real length (${kind})`, () => {
    const gatherer = new PayloadGatherer(allocator, 1 << 20, 1000, never);
    assert.ok(gatherer.add(Buffer.alloc(100, 1), 300));
    assert.ok(gatherer.add(Buffer.alloc(200, 2)));
    const full = gatherer.take()!;
    assert.equal(full.memory.capacity, 300);
    assert.deepEqual(bytesOf(full), Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(200, 2)]));
    assert.ok(gatherer.add(Buffer.alloc(100, 3), 300));
    const short = gatherer.take()!;
    assert.equal(short.length, 100);
    assert.equal(short.memory.handOff(short.length).length, 100);
    assert.deepEqual(short.memory.bytes(0, 100), Buffer.alloc(100, 3));
    short.memory.discard();
    // More than announced still fits up to the cap: the payload may grow to it instead.
    assert.ok(gatherer.add(Buffer.alloc(10), 5));
    const grown = gatherer.take()!;
    assert.equal(grown.memory.capacity, 1 << 20);
    grown.memory.discard();
  });
}

test('the wait ends waitMs after the last gathered write, at most 2 × waitMs after the first (a paced writer is not held back), only while bytes are gathered', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  let ended = 0;
  const gatherer = new PayloadGatherer(new OwnPayloadAllocator(undefined), 1000, 20, () => ended++);
  gatherer.wait(); // nothing gathered: no wait
  t.mock.timers.tick(100);
  assert.equal(ended, 0);
  gatherer.add(Buffer.alloc(10));
  gatherer.wait();
  t.mock.timers.tick(10);
  gatherer.add(Buffer.alloc(10));
  gatherer.wait(); // more came: the wait ends 20 ms after this write
  t.mock.timers.tick(19);
  assert.equal(ended, 0);
  t.mock.timers.tick(1);
  assert.equal(ended, 1);
  t.mock.timers.tick(100);
  assert.equal(ended, 1);
  gatherer.take();
  // A writer that never pauses for 20 ms: its bytes go at 2 × 20 ms after its first write.
  gatherer.add(Buffer.alloc(10));
  gatherer.wait();
  for (let at = 0; at < 30; at += 15) {
    t.mock.timers.tick(15);
    gatherer.add(Buffer.alloc(10));
    gatherer.wait();
  }
  assert.equal(ended, 1, 'still writing at 30 ms');
  t.mock.timers.tick(9);
  assert.equal(ended, 1);
  t.mock.timers.tick(1);
  assert.equal(ended, 2, 'ended at 40 ms');
  gatherer.take();
  gatherer.add(Buffer.alloc(10));
  gatherer.wait();
  gatherer.discard();
  t.mock.timers.tick(200);
  assert.equal(ended, 2, 'a discarded payload does not end its wait');
});

test('HTTP heads: their length, and the body length they announce', () => {
  const head = (lines: string[]): Buffer => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  const response = head(['HTTP/1.1 200 OK', 'Content-Type: x', 'Content-Length:  1048576 ']);
  assert.equal(httpHeadLength(Buffer.concat([response, Buffer.alloc(10)])), response.length);
  assert.equal(httpBodyLength(response), 1048576);
  assert.equal(httpBodyLength(head(['POST /x HTTP/1.1', 'content-length: 0'])), 0);
  assert.equal(httpBodyLength(head(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'])), undefined);
  assert.equal(httpBodyLength(head(['GET / HTTP/1.1', 'Host: a'])), undefined);
  assert.equal(httpHeadLength(Buffer.from('10000\r\n')), 0);
});
