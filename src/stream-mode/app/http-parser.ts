/**
 * Keeping HTTP bodies virtual through Node's own HTTP parser.
 *
 * Node's parser (llhttp in C++, `src/node_http_parser.cc`) copies every body span it reports
 * (`Parser::on_body` → `Buffer::Copy`): fed a lazy buffer, it would fetch every page. So when
 * `HTTPParser.prototype.execute` is given a lazy buffer, the parser is fed a same-length run of
 * zero bytes instead, and the body callback (slot `HTTPParser.kOnBody`) is wrapped to hand on the
 * matching slices of the lazy buffer rather than the copies of zeros. Zero bytes are invalid in
 * every part of an HTTP head, chunk size or trailer, so if the peer misframed a descriptor where
 * the parser expects anything but body, parsing fails (a visible error, never wrong bytes); and if
 * the body callbacks do not cover the whole buffer, execute reports an error.
 *
 * Relies on Node internals (Node 20: `lib/_http_common.js` exports `HTTPParser` with the static
 * slot constants; `lib/_http_server.js`/`_http_client.js` call `parser.execute(chunk)` from the
 * socket's 'data' events when the socket is not consumed by the C++ parser). A self-test checks
 * all of it at start-up; if it fails, the substitution is not installed and bodies are simply
 * fetched when the parser reads them (correct, no bypass).
 */
import { createRequire } from 'node:module';
import { OdbError, isOdbError } from '../../core/errors.js';
import type { StreamRuntime } from './runtime.js';

interface ParserLike {
  execute(data: Buffer): number | Error;
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  [slot: number]: unknown;
}

interface ParserClass {
  new (): ParserLike;
  prototype: ParserLike;
  kOnBody: number;
  kOnHeadersComplete: number;
  kOnMessageComplete: number;
  RESPONSE: number;
}

/**
 * Zero bytes fed to the parser in place of virtual body bytes (read-only, shared). Fed in pieces
 * of 64 KiB, the parser would report (and a proxy forward) a 1 MiB lazy buffer as 16 slices: 16
 * derived descriptors, regions and fetches downstream instead of one.
 */
const zeros = Buffer.alloc(1024 * 1024);

/** A failed check of Node's parser internals: the substitution is then not installed. */
function unexpected(what: string): OdbError {
  return new OdbError('ODB_ERR_UNSUPPORTED_RUNTIME', what);
}

function parserClass(): ParserClass {
  const require = createRequire(import.meta.url);
  const { HTTPParser } = require('_http_common') as { HTTPParser?: ParserClass };
  if (typeof HTTPParser !== 'function')
    throw unexpected("require('_http_common').HTTPParser is missing");
  for (const name of ['kOnBody', 'kOnHeadersComplete', 'kOnMessageComplete', 'RESPONSE'] as const) {
    if (typeof HTTPParser[name] !== 'number') throw unexpected(`HTTPParser.${name} is missing`);
  }
  if (typeof HTTPParser.prototype.execute !== 'function')
    throw unexpected('HTTPParser.prototype.execute is missing');
  return HTTPParser;
}

/** Feeds zeros for `data` and maps body callbacks back to slices of `data`. */
function executeVirtual(
  original: ParserLike['execute'],
  parser: ParserLike,
  kOnBody: number,
  data: Buffer,
  onCopy?: (bytes: number) => void,
): number | Error {
  const onBody = parser[kOnBody] as ((this: ParserLike, b: Buffer) => unknown) | undefined;
  let cursor = 0;
  parser[kOnBody] = function virtualBody(this: ParserLike, copy: Buffer): unknown {
    const slice = data.subarray(cursor, cursor + copy.length);
    cursor += copy.length;
    onCopy?.(copy.length); // the copy of zeros is garbage from here on
    return onBody?.call(this, slice);
  };
  let parsed = 0;
  try {
    while (parsed < data.length) {
      const piece = zeros.subarray(0, Math.min(zeros.length, data.length - parsed));
      const result = original.call(parser, piece);
      if (result instanceof Error) return result;
      parsed += result;
      if (result < piece.length) break; // paused (upgrade, or a message boundary it stops at)
    }
  } finally {
    parser[kOnBody] = onBody;
  }
  if (cursor !== parsed) {
    return new OdbError(
      'ODB_ERR_PROTOCOL',
      `${parsed - cursor} virtual bytes were parsed as HTTP framing, not body`,
    );
  }
  return parsed;
}

/** Runs the mechanism on a synthetic response; throws when anything differs from expectations. */
function selfTest(HTTPParser: ParserClass, original: ParserLike['execute']): void {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
  const bodies: Buffer[] = [];
  let complete = false;
  parser[HTTPParser.kOnHeadersComplete] = () => 0;
  parser[HTTPParser.kOnBody] = (b: Buffer) => void bodies.push(b);
  parser[HTTPParser.kOnMessageComplete] = () => void (complete = true);
  const virtual = Buffer.alloc(5000, 0x61);
  const head = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${virtual.length + 3}\r\n\r\n`);
  if (original.call(parser, head) !== head.length) throw unexpected('the head did not parse');
  const result = executeVirtual(original, parser, HTTPParser.kOnBody, virtual);
  if (result !== virtual.length) throw unexpected(`virtual body: ${String(result)}`);
  if (original.call(parser, Buffer.from('xyz')) !== 3)
    throw unexpected('the real tail did not parse');
  const delivered = Buffer.concat(bodies).toString('latin1');
  if (!complete || delivered !== 'a'.repeat(5000) + 'xyz')
    throw unexpected('body callbacks did not map back');
  if (bodies[0]!.buffer !== virtual.buffer)
    throw unexpected('the body was copied instead of sliced');
}

/**
 * Installs the substitution; returns undefined when installed, else why not (the caller says so
 * once; bodies are then fetched when parsed).
 */
export function installHttpParser(runtime: StreamRuntime): string | undefined {
  let HTTPParser: ParserClass;
  let original: ParserLike['execute'];
  try {
    HTTPParser = parserClass();
    original = HTTPParser.prototype.execute;
    selfTest(HTTPParser, original);
  } catch (err) {
    const why = isOdbError(err, 'ODB_ERR_UNSUPPORTED_RUNTIME')
      ? err.detail
      : (err as Error).message;
    return `Node's HTTP parser internals are not as expected (${why})`;
  }
  const kOnBody = HTTPParser.kOnBody;
  const noteGarbage = (bytes: number): void => runtime.noteGarbage(bytes);
  HTTPParser.prototype.execute = function execute(this: ParserLike, data: Buffer): number | Error {
    // Only untouched or clean lazy buffers are worth keeping virtual; others are read anyway.
    if (data && Buffer.isBuffer(data)) {
      const view = runtime.lazyView(data);
      if (view && !runtime.isMaterialized(view))
        return executeVirtual(original, this, kOnBody, data, noteGarbage);
    }
    return original.call(this, data);
  };
  return undefined;
}
