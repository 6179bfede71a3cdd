/**
 * Keeping HTTP bodies virtual through Node's own HTTP parser.
 *
 * Node's parser (llhttp in C++, `src/node_http_parser.cc`) copies every body span it reports
 * (`Parser::on_body` → `Buffer::Copy`): fed a lazy buffer, it would fetch every page. So when
 * `HTTPParser.prototype.execute` is given a lazy buffer, the parser is fed a same-length run of
 * zero bytes instead, and the application's body callback (slot `HTTPParser.kOnBody`) gets the
 * lazy buffer itself.
 *
 * The zeros are not reported: `on_body` skips the copy when the slot holds no function, and that
 * copy was the cost (about 400 µs and 1 MiB of garbage per MiB, at every tier that parsed a
 * body, and the collections that garbage forced). Only the last byte is fed with a callback in the
 * slot, so that the body reaches the application before the parser reports the message complete
 * (llhttp does so in the same call). Which bytes were body is known without the reports: zero bytes
 * are invalid in every part of an HTTP head, chunk size, chunk delimiter or trailer, and a message
 * that ends in the middle is followed by zeros that cannot start the next one, so a run of zeros
 * parses without an error only where all of it is body. If the peer misframed a descriptor where
 * the parser expects anything but body, parsing fails (a visible error, never wrong bytes).
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

/** Zero bytes fed to the parser in place of virtual body bytes (read-only, shared). */
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

type BodyCallback = (this: ParserLike, b: Buffer) => unknown;

/** Feeds `length` zero bytes with nothing in the body slot; returns what the parser took. */
function feedUnreported(
  original: ParserLike['execute'],
  parser: ParserLike,
  length: number,
): number | Error {
  let parsed = 0;
  while (parsed < length) {
    const piece = zeros.subarray(0, Math.min(zeros.length, length - parsed));
    const result = original.call(parser, piece);
    if (result instanceof Error) return result;
    parsed += result;
    if (result < piece.length) break; // paused (upgrade, or a message boundary it stops at)
  }
  return parsed;
}

/**
 * Feeds zeros for `data` and hands the body callback `data` itself (see the module's note).
 * Exported for its property test.
 */
export function executeVirtual(
  original: ParserLike['execute'],
  parser: ParserLike,
  kOnBody: number,
  data: Buffer,
): number | Error {
  if (data.length === 0) return original.call(parser, data);
  const onBody = parser[kOnBody] as BodyCallback | undefined;
  const deliver = (end: number): unknown => onBody?.call(parser, data.subarray(0, end));
  let parsed: number | Error;
  parser[kOnBody] = undefined;
  try {
    parsed = feedUnreported(original, parser, data.length - 1);
  } finally {
    parser[kOnBody] = onBody;
  }
  if (parsed instanceof Error) return parsed;
  if (parsed < data.length - 1) {
    deliver(parsed);
    return parsed;
  }
  let lastWasBody = false;
  parser[kOnBody] = function lastBodyByte(): unknown {
    lastWasBody = true;
    return deliver(data.length);
  };
  let last: number | Error;
  try {
    last = original.call(parser, zeros.subarray(0, 1));
  } finally {
    parser[kOnBody] = onBody;
  }
  if (last instanceof Error) return last;
  if (last === 1 && !lastWasBody) {
    return new OdbError('ODB_ERR_PROTOCOL', 'a virtual byte was parsed as HTTP framing, not body');
  }
  if (last === 0 && parsed > 0) deliver(parsed); // paused just before the last byte
  return parsed + last;
}

/**
 * Runs the mechanism on two synthetic responses, one whose virtual body has a real tail and one
 * that the virtual bytes complete; throws when anything differs from expectations.
 */
function selfTest(HTTPParser: ParserClass, original: ParserLike['execute']): void {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
  const bodies: Buffer[] = [];
  const complete: string[] = [];
  parser[HTTPParser.kOnHeadersComplete] = () => 0;
  parser[HTTPParser.kOnBody] = (b: Buffer) => void bodies.push(b);
  parser[HTTPParser.kOnMessageComplete] = () =>
    void complete.push(Buffer.concat(bodies.splice(0)).toString('latin1'));
  const virtual = Buffer.alloc(5000, 0x61);
  const parse = (text: string): void => {
    if (original.call(parser, Buffer.from(text)) !== text.length)
      throw unexpected(`${JSON.stringify(text.slice(0, 20))} did not parse`);
  };
  const parseVirtual = (): void => {
    const result = executeVirtual(original, parser, HTTPParser.kOnBody, virtual);
    if (result !== virtual.length) throw unexpected(`virtual body: ${String(result)}`);
    if (bodies.length > 0 && bodies[0]!.buffer !== virtual.buffer)
      throw unexpected('the body was copied instead of sliced');
  };
  parse(`HTTP/1.1 200 OK\r\ncontent-length: ${virtual.length + 3}\r\n\r\n`);
  parseVirtual();
  parse('xyz');
  parse(`HTTP/1.1 200 OK\r\ncontent-length: ${virtual.length}\r\n\r\n`);
  parseVirtual();
  const a = 'a'.repeat(virtual.length);
  if (complete.length !== 2 || complete[0] !== `${a}xyz` || complete[1] !== a)
    throw unexpected('body callbacks did not map back, or came after the message was complete');
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
  HTTPParser.prototype.execute = function execute(this: ParserLike, data: Buffer): number | Error {
    // Only untouched or clean lazy buffers are worth keeping virtual; others are read anyway.
    if (data && Buffer.isBuffer(data)) {
      const view = runtime.lazyView(data);
      if (view && !runtime.isMaterialized(view))
        return executeVirtual(original, this, kOnBody, data);
    }
    return original.call(this, data);
  };
  return undefined;
}
