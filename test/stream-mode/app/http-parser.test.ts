/**
 * The parser substitution (src/stream-mode/app/http-parser.ts) against Node's own parser: random
 * responses (Content-Length or chunked, one to four per connection), cut at random points, with
 * random pieces of body handed to the substitution as if they were lazy buffers. The body the
 * application sees, and where each message completes, must be what the plain parser reports; a
 * virtual piece that covers anything but body must fail the parse, never pass as body.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import fc from 'fast-check';
import { executeVirtual } from '../../../src/stream-mode/app/http-parser.js';

interface Parser {
  execute(data: Buffer): number | Error;
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  [slot: number]: unknown;
}
const { HTTPParser } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: {
    new (): Parser;
    prototype: Parser;
    kOnBody: number;
    kOnHeadersComplete: number;
    kOnMessageComplete: number;
    RESPONSE: number;
  };
};
const execute = HTTPParser.prototype.execute;

/** A response stream and, for each byte, whether it is body. */
interface Stream {
  readonly bytes: Buffer;
  readonly isBody: boolean[];
}

function response(body: Buffer, chunked: boolean, chunkSizes: number[]): Stream {
  const parts: Buffer[] = [];
  const isBody: boolean[] = [];
  const add = (b: Buffer, body: boolean): void => {
    parts.push(b);
    for (let i = 0; i < b.length; i++) isBody.push(body);
  };
  const head = chunked ? 'transfer-encoding: chunked' : `content-length: ${body.length}`;
  add(Buffer.from(`HTTP/1.1 200 OK\r\n${head}\r\n\r\n`), false);
  if (!chunked) add(body, true);
  else {
    let at = 0;
    for (let k = 0; at < body.length; k++) {
      const n = Math.min(body.length - at, chunkSizes[k % chunkSizes.length]!);
      add(Buffer.from(`${n.toString(16)}\r\n`), false);
      add(body.subarray(at, at + n), true);
      add(Buffer.from('\r\n'), false);
      at += n;
    }
    add(Buffer.from('0\r\n\r\n'), false);
  }
  return { bytes: Buffer.concat(parts), isBody };
}

/** What a parser reports: body bytes, and the body length seen at each message's completion. */
function parse(pieces: { bytes: Buffer; virtual: boolean }[]): {
  body: Buffer;
  completions: number[];
  failed: boolean;
} {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
  const body: Buffer[] = [];
  let bodyLength = 0;
  const completions: number[] = [];
  parser[HTTPParser.kOnHeadersComplete] = () => 0;
  parser[HTTPParser.kOnBody] = (b: Buffer) => {
    body.push(Buffer.from(b));
    bodyLength += b.length;
  };
  parser[HTTPParser.kOnMessageComplete] = () => void completions.push(bodyLength);
  for (const piece of pieces) {
    const result = piece.virtual
      ? executeVirtual(execute, parser, HTTPParser.kOnBody, piece.bytes)
      : execute.call(parser, piece.bytes);
    if (result instanceof Error || result !== piece.bytes.length)
      return { body: Buffer.concat(body), completions, failed: true };
  }
  return { body: Buffer.concat(body), completions, failed: false };
}

const streams = fc
  .array(
    fc.record({
      body: fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((b) => Buffer.from(b)),
      chunked: fc.boolean(),
      chunkSizes: fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 4 }),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .map((messages) => {
    const all = messages.map((m) => response(m.body, m.chunked, m.chunkSizes));
    return {
      bytes: Buffer.concat(all.map((s) => s.bytes)),
      isBody: all.flatMap((s) => s.isBody),
    };
  });

/** Cuts `stream` where body and framing meet and at `cuts` (relative steps) within each run. */
function cutStream(stream: Stream, cuts: number[]): { bytes: Buffer; allBody: boolean }[] {
  const pieces: { bytes: Buffer; allBody: boolean }[] = [];
  let k = 0;
  for (let start = 0; start < stream.bytes.length;) {
    let end = start;
    while (end < stream.bytes.length && stream.isBody[end] === stream.isBody[start]) end++;
    for (let at = start; at < end;) {
      const to = Math.min(end, at + cuts[k++ % cuts.length]!);
      pieces.push({ bytes: stream.bytes.subarray(at, to), allBody: stream.isBody[start]! });
      at = to;
    }
    start = end;
  }
  return pieces;
}

test('virtual body pieces parse as Node parses the real bytes', () => {
  fc.assert(
    fc.property(
      streams,
      fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 12 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }),
      (stream, cuts, flags) => {
        const pieces = cutStream(stream, cuts).map((p, i) => ({
          bytes: p.bytes,
          virtual: p.allBody && flags[i % flags.length]!,
        }));
        const plain = parse(pieces.map((p) => ({ bytes: p.bytes, virtual: false })));
        assert.equal(plain.failed, false);
        const substituted = parse(pieces);
        assert.equal(substituted.failed, false);
        assert.deepEqual(substituted.body, plain.body);
        assert.deepEqual(substituted.completions, plain.completions);
      },
    ),
    { numRuns: 300 },
  );
});

test('a virtual piece that covers any framing byte fails the parse, never passes as body', () => {
  fc.assert(
    fc.property(
      streams,
      fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 12 }),
      fc.nat(),
      fc.integer({ min: 1, max: 3000 }),
      (stream, cuts, pick, spread) => {
        // One virtual piece from a framing byte on, the rest real, cut as above.
        const framing = stream.isBody.flatMap((body, i) => (body ? [] : [i]));
        const from = framing[pick % framing.length]!;
        const to = Math.min(stream.bytes.length, from + spread);
        const before = cutStream(
          { bytes: stream.bytes.subarray(0, from), isBody: stream.isBody.slice(0, from) },
          cuts,
        );
        const pieces = [
          ...before.map((p) => ({ bytes: p.bytes, virtual: false })),
          { bytes: stream.bytes.subarray(from, to), virtual: true },
          { bytes: stream.bytes.subarray(to), virtual: false },
        ].filter((p) => p.bytes.length > 0);
        assert.equal(parse(pieces).failed, true);
      },
    ),
    { numRuns: 300 },
  );
});
