import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isOdbError } from '../../src/core/errors.js';
import { crc8 } from '../../src/protocol/crc8.js';
import {
  FrameDecoder,
  FrameType,
  encodeFrameHeader,
  encodeRealFrames,
  encodeVirtualFrame,
  frameReal,
  frameHeaderBytes,
  maxFrameBody,
  type FrameEvent,
} from '../../src/protocol/frame.js';
import { fuzzRuns } from '../helpers/repo.js';

test('CRC-8 check value', () => {
  assert.equal(crc8(Buffer.from('123456789')), 0xf4);
  assert.equal(crc8(Buffer.alloc(0)), 0);
});

/** Feeds `stream` to a decoder in the given split; returns real bytes, descriptors and hellos. */
function decode(
  stream: Buffer,
  cuts: number[],
): { real: Buffer; virtual: Buffer[]; hello: Buffer[]; order: string[] } {
  const decoder = new FrameDecoder();
  const real: Buffer[] = [];
  const virtual: Buffer[] = [];
  const hello: Buffer[] = [];
  const order: string[] = [];
  const emit = (e: FrameEvent): void => {
    if (e.type === 'real') real.push(Buffer.from(e.bytes));
    else if (e.type === 'virtual') virtual.push(e.descriptor);
    else hello.push(e.body);
    if (e.type !== 'real' || e.last) order.push(e.type);
  };
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < stream.length)].sort((a, b) => a - b)) {
    decoder.push(stream.subarray(at, cut), emit);
    at = cut;
  }
  decoder.push(stream.subarray(at), emit);
  decoder.end();
  return { real: Buffer.concat(real), virtual, hello, order };
}

const frameArb = fc.oneof(
  fc
    .uint8Array({ minLength: 1, maxLength: 3000 })
    .map((b) => ({ kind: 'real' as const, body: Buffer.from(b) })),
  fc
    .uint8Array({ minLength: 1, maxLength: 340 })
    .map((b) => ({ kind: 'virtual' as const, body: Buffer.from(b) })),
  fc
    .uint8Array({ minLength: 0, maxLength: 256 })
    .map((b) => ({ kind: 'hello' as const, body: Buffer.from(b) })),
);

test('property: any sequence of frames decodes identically under any split', () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 12 }),
      fc.array(fc.nat(40_000), { maxLength: 30 }),
      (frames, cuts) => {
        const parts: Buffer[] = [];
        for (const f of frames) {
          if (f.kind === 'real') parts.push(...encodeRealFrames(f.body));
          else if (f.kind === 'virtual') parts.push(...encodeVirtualFrame(f.body));
          else parts.push(encodeFrameHeader(FrameType.hello, f.body.length), f.body);
        }
        const out = decode(Buffer.concat(parts), cuts);
        assert.deepEqual(
          out.real,
          Buffer.concat(frames.filter((f) => f.kind === 'real').map((f) => f.body)),
        );
        assert.deepEqual(
          out.virtual,
          frames.filter((f) => f.kind === 'virtual').map((f) => f.body),
        );
        assert.deepEqual(
          out.hello,
          frames.filter((f) => f.kind === 'hello').map((f) => f.body),
        );
        assert.deepEqual(
          out.order,
          frames.map((f) => f.kind),
        );
      },
    ),
    { numRuns: fuzzRuns },
  );
});

test('property: a corrupted header byte is rejected before its body is trusted', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: frameHeaderBytes - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (at, flip) => {
        const frame = Buffer.concat(encodeVirtualFrame(Buffer.alloc(90, 1)));
        frame[at]! ^= flip;
        try {
          decode(frame, []);
          return false;
        } catch (err) {
          return isOdbError(err, 'ODB_ERR_BAD_CRC') || isOdbError(err, 'ODB_ERR_BAD_FRAME');
        }
      },
    ),
    { numRuns: fuzzRuns },
  );
});

test('property: random bytes never decode into events without an error unless they are frames', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
      try {
        decode(Buffer.from(bytes), []);
        // Only possible if the bytes happen to be whole valid frames.
        return bytes[0] === 0x0d && bytes[1] === 0xb1;
      } catch (err) {
        return isOdbError(err);
      }
    }),
    { numRuns: fuzzRuns },
  );
});

test('oversized lengths are refused as soon as the header is read', () => {
  for (const type of [FrameType.real, FrameType.virtual, FrameType.hello]) {
    const header = Buffer.alloc(frameHeaderBytes);
    header.set([0x0d, 0xb1, 1, type]);
    header.writeUInt32BE(maxFrameBody[type] + 1, 4);
    header[8] = crc8(header, 0, 8);
    const decoder = new FrameDecoder();
    assert.throws(
      () => decoder.push(header, () => {}),
      (e: unknown) => isOdbError(e, 'ODB_ERR_FRAME_TOO_LARGE'),
    );
    // Once failed, a decoder stays failed.
    assert.throws(
      () => decoder.push(Buffer.alloc(1), () => {}),
      (e: unknown) => isOdbError(e, 'ODB_ERR_FRAME_TOO_LARGE'),
    );
  }
  assert.throws(
    () => encodeFrameHeader(FrameType.virtual, 10_000),
    (e: unknown) => isOdbError(e, 'ODB_ERR_FRAME_TOO_LARGE'),
  );
});

test('a stream ending inside a frame is an error; at a boundary it is not', () => {
  const frame = Buffer.concat(encodeRealFrames(Buffer.alloc(100, 3)));
  for (const cut of [1, frameHeaderBytes, frameHeaderBytes + 50]) {
    const decoder = new FrameDecoder();
    decoder.push(frame.subarray(0, cut), () => {});
    assert.equal(decoder.atBoundary, false);
    assert.throws(
      () => decoder.end(),
      (e: unknown) => isOdbError(e, 'ODB_ERR_BAD_FRAME'),
    );
  }
  const decoder = new FrameDecoder();
  decoder.push(frame, () => {});
  assert.equal(decoder.atBoundary, true);
  decoder.end();
});

test('real bytes are handed out as views of the input (no copy)', () => {
  const body = Buffer.alloc(1000, 9);
  const stream = Buffer.concat(encodeRealFrames(body));
  const decoder = new FrameDecoder();
  let seen: Buffer | undefined;
  decoder.push(stream, (e) => {
    if (e.type === 'real') seen = e.bytes;
  });
  assert.equal(seen!.buffer, stream.buffer);
  assert.equal(encodeRealFrames(Buffer.alloc(0)).length, 0);
});

test('frameReal: one buffer for small bodies, same bytes as the general encoder', () => {
  for (const size of [1, 100, 16 * 1024, 16 * 1024 + 1, 100_000]) {
    const body = Buffer.alloc(size, 7);
    const parts = frameReal(body);
    assert.equal(parts.length, size <= 16 * 1024 ? 1 : 2);
    assert.deepEqual(Buffer.concat(parts), Buffer.concat(encodeRealFrames(body)));
  }
  assert.deepEqual(frameReal(Buffer.alloc(0)), []);
});
