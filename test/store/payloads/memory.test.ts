// MemoryPayload under any write pattern: readers get exactly what was written, and the memory it
// holds follows the bytes, not the number of writes (issue 13, item 15).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemoryPayload } from '../../../src/store/payloads/memory.js';
import { fuzzRuns } from '../../helpers/repo.js';

const blockBytes = 16;

/** One step of a producer and its single consumer. */
type Step =
  | { kind: 'write'; bytes: Uint8Array; asString: boolean }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'consume'; discard: boolean };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      bytes: fc.uint8Array({ maxLength: 3 * blockBytes }),
      asString: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      bytes: fc.uint8Array({ maxLength: 4 * blockBytes }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('consume' as const), discard: fc.boolean() }),
  },
);

test('memory payload: the consumer gets every byte in order, whatever the writes; memory follows unread bytes', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArb, { maxLength: 80 }), fc.boolean(), async (steps, open) => {
      const written: number[] = [];
      const total = steps.reduce((n, s) => (s.kind === 'consume' ? n : n + s.bytes.length), 0);
      const payload = new MemoryPayload(
        open ? { blockBytes } : { blockBytes, expectedSize: total },
      );
      const reader = payload.read(0, open ? undefined : total)[Symbol.asyncIterator]();
      let consumed = 0;
      let discarded = 0;
      let largest = 0;
      const check = (): void => {
        assert.equal(payload.written, written.length);
        assert.equal(payload.unreadBytes, written.length - discarded);
        // Every unread byte is held; beyond them at most the partly read first block (as large
        // as the largest write) and the unfilled end of the last one, twice over when appended
        // buffers seal part-filled blocks.
        const unread = written.length - discarded;
        assert.ok(payload.heldBytes >= unread, `held ${payload.heldBytes} < unread ${unread}`);
        const bound = 2 * (unread + Math.max(largest, blockBytes) + blockBytes);
        assert.ok(payload.heldBytes <= bound, `held ${payload.heldBytes} > ${bound}`);
      };
      const consumeOne = async (discard: boolean): Promise<void> => {
        const { value, done } = await reader.next();
        assert.equal(done, false);
        const chunk = value as Buffer;
        assert.ok(chunk.length > 0);
        assert.deepEqual([...chunk], written.slice(consumed, consumed + chunk.length));
        consumed += chunk.length;
        if (discard) {
          payload.discardBefore(consumed);
          discarded = consumed;
        }
      };
      for (const step of steps) {
        if (step.kind === 'consume') {
          if (consumed < written.length) await consumeOne(step.discard);
        } else {
          // The producer's buffer is overwritten after a write: a copy must not see it.
          const bytes =
            step.kind === 'append' ? Buffer.from(step.bytes) : new Uint8Array(step.bytes);
          if (step.kind === 'append') payload.append(bytes as Buffer);
          else if (step.asString) payload.write(Buffer.from(bytes).toString('latin1'), 'latin1');
          else payload.write(bytes);
          written.push(...step.bytes);
          largest = Math.max(largest, step.bytes.length);
          if (step.kind === 'write') bytes.fill(0xee);
        }
        check();
      }
      payload.finish();
      assert.equal(payload.size, written.length);
      while (consumed < written.length) await consumeOne(true);
      assert.equal((await reader.next()).done, true);
      payload.discardBefore(consumed);
      // Consumed to the end: at most the last block is left.
      assert.ok(payload.heldBytes <= Math.max(largest, blockBytes), `held ${payload.heldBytes}`);
    }),
    { numRuns: fuzzRuns },
  );
});

test('memory payload: any range of a complete payload reads back exactly, in block-sized views', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ maxLength: 3 * blockBytes }), { maxLength: 30 }),
      fc.nat(),
      fc.nat(),
      async (writes, a, b) => {
        const all = Buffer.concat(writes);
        const payload = new MemoryPayload({ blockBytes, expectedSize: all.length });
        for (const w of writes) payload.write(w);
        payload.finish();
        const start = all.length === 0 ? 0 : a % (all.length + 1);
        const end = start + (all.length === 0 ? 0 : b % (all.length - start + 1));
        const parts: Buffer[] = [];
        for await (const chunk of payload.read(start, end)) parts.push(chunk);
        assert.deepEqual(Buffer.concat(parts), all.subarray(start, end));
        // A payload of known size holds exactly its bytes: no block is cut beyond the last one.
        assert.equal(payload.heldBytes, all.length);
      },
    ),
    { numRuns: fuzzRuns },
  );
});

test('memory payload: a million one-byte writes through an open payload take time and memory by bytes', async () => {
  const writes = 1_000_000;
  const window = 64 * 1024;
  // About 1 s on the reference machine; the splice-per-read version needed minutes.
  const limitMs = 15_000;
  const payload = new MemoryPayload({ highWaterBytes: window });
  const expected = createHash('sha256');
  const got = createHash('sha256');
  let peakHeld = 0;
  const started = Date.now();
  const consuming = (async () => {
    let position = 0;
    for await (const chunk of payload.read(0, undefined)) {
      got.update(chunk);
      position += chunk.length;
      payload.discardBefore(position);
    }
    return position;
  })();
  for (let i = 0; i < writes; i++) {
    // A new buffer per write, as `append` wants; `write` (which copies) goes the same way.
    const byte = Buffer.of((i * 31) & 0xff);
    expected.update(byte);
    payload.append(byte);
    if (payload.needsDrain) {
      peakHeld = Math.max(peakHeld, payload.heldBytes);
      await new Promise<void>((resolve) => payload.onDrain(resolve));
      if (Date.now() - started > limitMs) assert.fail(`only ${i} writes within ${limitMs} ms`);
    }
  }
  payload.finish();
  assert.equal(await consuming, writes);
  const elapsed = Date.now() - started;
  assert.equal(got.digest('hex'), expected.digest('hex'));
  // The window, one write past it, and the partly read and partly written blocks.
  assert.ok(peakHeld <= window + 1 + 2 * 64 * 1024, `held ${peakHeld} bytes`);
  assert.ok(elapsed < limitMs, `took ${elapsed} ms`);
});
