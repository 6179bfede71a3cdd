/**
 * Captures the body an unmodified `(req, res)` handler writes, so it can go as a descriptor.
 *
 * While the size is undecided, `writeHead`/`write`/`end` are held back. Once the announced
 * Content-Length, or the bytes written so far, reach the threshold, the descriptor head goes out
 * (`Content-Length: 0`) and every later write lands in a MemoryPayload that the front end is
 * already fetching. If the body stays small, the held calls are replayed unchanged, so the wire
 * bytes are those of plain Node.
 *
 * The head is a complete response: the connection is handed to the next request at once and the
 * handler goes on writing into a response detached from it (see ResponseDetacher), whose 'close'
 * tells it that the payload was abandoned. Where the server's connection release cannot be found,
 * the head says `Connection: close` instead, and the owning server is switched to
 * `httpAllowHalfOpen` so that the peer closing its side does not close `res` under the handler.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { MemoryPayload } from '../store/payloads/memory.js';
import { HeldWrites } from './held-writes.js';
import { ResponseDetacher } from './response-detacher.js';
import { WritePacer } from './write-pacer.js';

/** What the capture asks of its owner. */
export interface CaptureHooks {
  readonly thresholdBytes: number;
  /**
   * The body goes virtual: register a payload (`size` undefined: unknown length), set the
   * descriptor headers on `res` and return the payload; or undefined to send it real.
   */
  begin(
    size: number | undefined,
    originalContentLength: number | undefined,
  ): MemoryPayload | undefined;
  /** The handler ended a virtual body. */
  finished(payload: MemoryPayload): void;
}

type Callback = (err?: Error | null) => void;
type Chunk = string | Uint8Array;

/**
 * Writes a captured handler may make in one turn of the event loop, however small (with the
 * socket's high-water mark of bytes). A socket stops a handler writing one byte at a time after a
 * few thousand writes; a payload in memory would not. Node accepts one connection per turn of a
 * busy loop, so long turns starve new connections: with 30 such handlers and no count limit,
 * store fetches waited over 5 s to be accepted and failed. 1024 writes cost ~0.4 ms per turn and
 * about 10 % more CPU for one-byte writes than no limit; writes of 16 bytes or more never reach it.
 */
const turnWrites = 1024;

interface HttpServerLike {
  httpAllowHalfOpen?: boolean;
}

/** Starts capturing `res`. Must be called before the handler writes anything. */
export function captureResponse(res: ServerResponse, hooks: CaptureHooks): void {
  const detacher = ResponseDetacher.prepare(res);
  const held = new HeldWrites();
  let payload: MemoryPayload | undefined;
  // Held or captured, the handler's writes are paced like writes to a socket (see WritePacer).
  const pacer = new WritePacer({
    turnBytes: res.writableHighWaterMark,
    turnWrites: turnWrites,
    sinkFull: () => payload?.needsDrain ?? false,
    whenSinkHasRoom: (listener) => payload!.onDrain(listener),
    drain: () => {
      if (!res.writableEnded) res.emit('drain');
    },
  });

  const restore = (): void => {
    // Own properties shadow the prototype's methods; deleting them restores plain Node behaviour.
    delete (res as Partial<ServerResponse>).writeHead;
    delete (res as Partial<ServerResponse>).write;
    delete (res as Partial<ServerResponse>).end;
    delete (res as Partial<ServerResponse>).destroy;
  };

  const replayReal = (): void => {
    restore();
    held.replayInto({ write: (chunk, callback) => res.write(chunk, callback) });
  };

  const goVirtual = (
    size: number | undefined,
    originalContentLength: number | undefined,
    ending: boolean,
  ): boolean => {
    payload = hooks.begin(size, originalContentLength);
    if (!payload) return false;
    // Node's implicit head goes through writeHead, which must be the real one again.
    delete (res as Partial<ServerResponse>).writeHead;
    if (ending) {
      // The whole body is here: the handler's end() ends the response right after.
    } else if (detacher) {
      res.flushHeaders();
      detacher.detach();
      const target = payload;
      payload.whenAbandoned(() => detacher.destroy());
      res.destroy = function destroyDetached(this: ServerResponse, err?: Error): ServerResponse {
        target.fail(`the handler destroyed the response${err ? `: ${err.message}` : ''}`);
        detacher.destroy();
        return this;
      };
    } else {
      holdConnectionUntilEnd(res, payload);
    }
    const { bytes, callbacks } = held.take();
    payload.write(bytes);
    for (const callback of callbacks) process.nextTick(callback);
    return true;
  };

  const appendVirtual = (
    chunk: Chunk,
    encoding: BufferEncoding | undefined,
    callback?: Callback,
  ): boolean => {
    // Copied (the handler may reuse its buffer once the write callback ran) into the payload's
    // blocks, so a body written in tiny pieces costs memory by its bytes, not by its writes.
    payload!.write(chunk, encoding);
    if (callback) process.nextTick(callback);
    return pacer.wrote(byteLength(chunk, encoding));
  };

  const announcedLength = (): number | undefined => {
    const header = res.getHeader('content-length');
    if (header === undefined) return undefined;
    const n = Number(header);
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  };

  /** Decides once enough is known; returns true when a decision was made. */
  const decide = (ending: boolean, pendingBytes: number, writesBefore: number): boolean => {
    const announced = announcedLength();
    if (announced !== undefined) {
      if (announced < hooks.thresholdBytes || !goVirtual(announced, announced, ending))
        replayReal();
      return true;
    }
    const total = held.byteLength + pendingBytes;
    if (ending) {
      // Node gives a body ended in one call a Content-Length, and a written one chunked framing.
      const original = writesBefore === 0 ? total : undefined;
      if (total < hooks.thresholdBytes || !goVirtual(total, original, true)) replayReal();
      return true;
    }
    if (total >= hooks.thresholdBytes) {
      if (!goVirtual(undefined, undefined, false)) replayReal();
      return true;
    }
    return false;
  };

  res.writeHead = function captureWriteHead(
    this: ServerResponse,
    statusCode: number,
    reason?: string | OutgoingHttpHeaders | (string | string[])[],
    headers?: OutgoingHttpHeaders | (string | string[])[],
  ): ServerResponse {
    this.statusCode = statusCode;
    if (typeof reason === 'string') this.statusMessage = reason;
    else headers = reason;
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2) {
        this.appendHeader(String(headers[i]), headers[i + 1] as string | string[]);
      }
    } else if (headers) {
      for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined) this.setHeader(name, value);
      }
    }
    return this;
  } as ServerResponse['writeHead'];

  res.write = function captureWrite(
    this: ServerResponse,
    chunk: Chunk,
    encodingOrCallback?: BufferEncoding | Callback,
    maybeCallback?: Callback,
  ): boolean {
    const [encoding, callback] = splitArgs(encodingOrCallback, maybeCallback);
    if (payload) return appendVirtual(chunk, encoding, callback);
    const length = byteLength(chunk, encoding);
    if (decide(false, length, held.count)) {
      if (payload) return appendVirtual(chunk, encoding, callback);
      return res.write(chunk, encoding as BufferEncoding, callback);
    }
    held.push(chunk, encoding, callback);
    return pacer.wrote(length);
  } as ServerResponse['write'];

  res.end = function captureEnd(
    this: ServerResponse,
    chunkOrCallback?: Chunk | Callback,
    encodingOrCallback?: BufferEncoding | Callback,
    maybeCallback?: Callback,
  ): ServerResponse {
    let chunk: Chunk | undefined;
    let encoding: BufferEncoding | undefined;
    let callback: Callback | undefined;
    if (typeof chunkOrCallback === 'function') callback = chunkOrCallback;
    else {
      chunk = chunkOrCallback ?? undefined;
      [encoding, callback] = splitArgs(encodingOrCallback, maybeCallback);
    }
    if (!payload) decide(true, chunk === undefined ? 0 : byteLength(chunk, encoding), held.count);
    if (!payload) {
      return chunk === undefined
        ? res.end(callback)
        : res.end(chunk, encoding as BufferEncoding, callback);
    }
    if (chunk !== undefined) appendVirtual(chunk, encoding);
    const finished = payload;
    finished.finish();
    restore();
    if (detacher?.detached) detacher.end(callback);
    else res.end(callback);
    hooks.finished(finished);
    return res;
  } as ServerResponse['end'];
}

/**
 * Without a detacher: the response stays on its connection until the handler ends it, so the head
 * asks the peer not to reuse the connection. The peer may then close its side (nginx also does so
 * with HTTP/1.0 upstreams); Node's default reaction would close `res` under the handler and cut a
 * piped body short, hence `httpAllowHalfOpen`.
 */
function holdConnectionUntilEnd(res: ServerResponse, payload: MemoryPayload): void {
  const server = (res.socket as { server?: HttpServerLike } | null)?.server;
  if (server) server.httpAllowHalfOpen = true;
  res.setHeader('connection', 'close');
  res.flushHeaders();
  res.on('close', () => {
    if (!res.writableEnded) payload.fail('the response was destroyed before the handler ended it');
  });
  payload.whenAbandoned(() => {
    if (!res.writableEnded) res.destroy();
  });
}

function splitArgs(
  encodingOrCallback: BufferEncoding | Callback | undefined,
  maybeCallback: Callback | undefined,
): [BufferEncoding | undefined, Callback | undefined] {
  return typeof encodingOrCallback === 'function'
    ? [undefined, encodingOrCallback]
    : [encodingOrCallback, maybeCallback];
}

function byteLength(chunk: Chunk, encoding: BufferEncoding | undefined): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
}
