/**
 * A fetch whose body the kernel moves: the request and the response head cross JavaScript, the
 * body goes from the store connection through a pipe into the destination socket by splice(2)
 * (src/native/transfer.ts). It needs a store connection JavaScript can stop reading at the end of
 * the head, which undici's pools cannot give, so these connections are plain sockets of their
 * own, read through `onread` (a fixed buffer; returning false stops libuv reading at once), kept
 * alive per store and reused. The head parser accepts only what a store sends: a status line,
 * at most 64 headers, one Content-Length; anything else is ODB_ERR_PROTOCOL.
 */
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { OdbError } from '../core/errors.js';
import { parseHostPort } from '../core/net/address.js';
import {
  countKernelBytes,
  lendableFd,
  markLent,
  whenFlushed,
  type FlushScope,
} from '../core/net/socket-handoff.js';
import type { TransferEngine } from '../native/transfer.js';
import { descriptorToText, type Descriptor } from '../protocol/descriptor.js';
import {
  errorHeader,
  payloadPath,
  releaseHeader,
  releaseOnComplete,
} from '../protocol/store-rpc.js';
import { DestinationClosedError } from '../http-core/response-sink.js';
import { classify, refusalError } from './fetch-errors.js';

/** Largest response head (and refusal body) read from a store. */
const maxHeadBytes = 16 * 1024;
// Small: what comes with the head goes through JavaScript, the rest through the kernel.
const readBufferBytes = 4 * 1024;

/** Where a spliced body goes. */
export interface SpliceTarget {
  /**
   * Called once the store's head says the bytes are coming: write the destination's own head
   * and return its socket's descriptor and the socket (or undefined: the destination is gone).
   * `write` sends the few body bytes that came with the store's head through JavaScript first.
   */
  start(length: number):
    | {
        readonly socket: Socket;
        /** The socket's descriptor when `start` looked: the splice refuses another one. */
        readonly fd: number;
        /**
         * Writes the few bytes that came with the store's head. A promise: settles true once
         * they are in the kernel (false: the socket failed), so nothing needs polling.
         */
        write(bytes: Buffer): unknown;
        /** What must be empty before the kernel writes (default `all`: see FlushScope). */
        readonly flushScope?: FlushScope;
      }
    | undefined;
}

/** Options of a {@link SplicedFetcher}. */
export interface SplicedFetcherOptions {
  readonly engine: TransferEngine;
  /** Connecting and waiting for the response head. */
  readonly fetchTimeoutMs: number;
  /** How long a body may make no progress (the store's or the destination's side). */
  readonly idleTimeoutMs: number;
  /**
   * How long the destination may take no bytes, instead of `idleTimeoutMs`; 0: no limit (stream
   * mode: the application's socket keeps Node's behaviour, where a slow reader takes its time).
   */
  readonly destinationIdleMs?: number;
  /** How long an unused connection is kept. */
  readonly keepAliveMs?: number;
  /** Reports each new store connection (the tiers count its bytes). */
  readonly onSocket?: (socket: Socket) => void;
  /** Opens a store connection (default `net.connect`); stream mode marks its own sockets. */
  readonly connect?: (options: NetConnectOpts) => Socket;
}

/** A head read from a store connection. */
interface StoreHead {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Body bytes read along with the head. */
  readonly rest: Buffer;
}

/** One keep-alive connection to a store, read into a fixed buffer. */
class StoreConnection {
  readonly socket: Socket;
  /** Responses read on it: a reused connection may have been closed by the store meanwhile. */
  served = 0;
  /** How long the store keeps it idle (its `keep-alive: timeout=` hint, less a second). */
  idleMs: number | undefined;
  #head: Buffer[] = [];
  #headBytes = 0;
  #waiter: ((head: StoreHead | Error) => void) | undefined;
  #body: { need: number; chunks: Buffer[]; done: (body: Buffer | Error) => void } | undefined;
  #failure: Error | undefined;
  #answered = false;

  /** True once a byte of the current response came. */
  get answered(): boolean {
    return this.#answered;
  }

  constructor(
    endpoint: string,
    onSocket?: (socket: Socket) => void,
    open: (options: NetConnectOpts) => Socket = connect,
  ) {
    const { host, port } = parseHostPort(endpoint, 'store endpoint');
    this.socket = open({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(readBufferBytes),
        callback: (nread, buf) => this.#onRead((buf as Buffer).subarray(0, nread)),
      },
    });
    this.socket.on('error', (err) => this.#fail(err));
    this.socket.on('close', () =>
      this.#fail(new OdbError('ODB_ERR_FETCH_ABORTED', 'store closed the connection')),
    );
    onSocket?.(this.socket);
  }

  #onIdle: (() => void) | undefined;
  #onIdleClose: (() => void) | undefined;

  /**
   * Kept idle for at most `ms`, then `onIdle`; `onClose` if the store closes it meanwhile;
   * undefined: in use again. One listener of each at a time, however often the connection is
   * reused.
   */
  keptIdle(ms: number | undefined, onIdle?: () => void, onClose?: () => void): void {
    if (this.#onIdle) this.socket.off('timeout', this.#onIdle);
    if (this.#onIdleClose) this.socket.off('close', this.#onIdleClose);
    this.#onIdle = onIdle;
    this.#onIdleClose = onClose;
    if (onClose) this.socket.once('close', onClose);
    if (ms === undefined || !onIdle) {
      this.socket.setTimeout(0);
      return;
    }
    this.socket.setTimeout(ms);
    this.socket.once('timeout', onIdle);
  }

  /** True while connecting: a deadline then means the store cannot be reached. */
  get connecting(): boolean {
    return this.socket.connecting;
  }

  get usable(): boolean {
    return !this.#failure && !this.socket.destroyed;
  }

  /** Sends a request and resolves with the response head, reading stopped right after it. */
  request(text: string): Promise<StoreHead> {
    return new Promise((resolve, reject) => {
      if (this.#failure) return reject(this.#failure);
      this.#head = [];
      this.#headBytes = 0;
      this.#answered = false;
      this.#waiter = (head) => (head instanceof Error ? reject(head) : resolve(head));
      this.socket.resume();
      this.socket.write(text);
    });
  }

  /** Reads `length` more body bytes through JavaScript (a refusal's short JSON body). */
  readBody(already: Buffer, length: number): Promise<Buffer> {
    if (already.length >= length) return Promise.resolve(already.subarray(0, length));
    return new Promise((resolve, reject) => {
      if (this.#failure) return reject(this.#failure);
      this.#body = {
        need: length - already.length,
        chunks: [Buffer.from(already)],
        done: (body) => (body instanceof Error ? reject(body) : resolve(body)),
      };
      this.socket.resume();
    });
  }

  #onRead(bytes: Buffer): boolean {
    const body = this.#body;
    if (body) {
      body.chunks.push(Buffer.from(bytes.subarray(0, body.need)));
      body.need -= Math.min(body.need, bytes.length);
      if (body.need === 0) {
        this.#body = undefined;
        body.done(Buffer.concat(body.chunks));
        return false;
      }
      return true;
    }
    const waiter = this.#waiter;
    if (!waiter) {
      // Nothing asked: a store never speaks first.
      this.#fail(new OdbError('ODB_ERR_PROTOCOL', 'store sent bytes nobody asked for'));
      return false;
    }
    this.#answered = true;
    // The buffer is reused by the next read: keep copies.
    this.#head.push(Buffer.from(bytes));
    this.#headBytes += bytes.length;
    const all = this.#head.length === 1 ? this.#head[0]! : Buffer.concat(this.#head);
    const end = all.indexOf('\r\n\r\n');
    if (end === -1) {
      if (this.#headBytes > maxHeadBytes)
        this.#fail(new OdbError('ODB_ERR_PROTOCOL', 'store response head too large'));
      return true;
    }
    this.#waiter = undefined;
    try {
      const head = parseHead(all.subarray(0, end).toString('latin1'));
      this.served++;
      const hint = /timeout=(\d+)/.exec(head.headers['keep-alive'] ?? '');
      if (hint) this.idleMs = Math.max(0, Number(hint[1]) * 1000 - 1000);
      waiter({ ...head, rest: all.subarray(end + 4) });
    } catch (err) {
      this.#fail(err as Error);
    }
    return false;
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(this.#failure);
    const body = this.#body;
    this.#body = undefined;
    body?.done(this.#failure);
    if (!this.socket.destroyed) this.socket.destroy();
  }

  destroy(): void {
    this.#fail(new OdbError('ODB_ERR_FETCH_ABORTED', 'connection given up'));
  }
}

function parseHead(text: string): { status: number; headers: Record<string, string> } {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0]! + ' ');
  if (!status || lines.length > 65)
    throw new OdbError('ODB_ERR_PROTOCOL', 'malformed store response head');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new OdbError('ODB_ERR_PROTOCOL', 'malformed store response header');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length' && headers[name] !== undefined) {
      throw new OdbError('ODB_ERR_PROTOCOL', 'two Content-Length headers from the store');
    }
    headers[name] = value;
  }
  return { status: Number(status[1]), headers };
}

/**
 * A store's response body being spliced into destinations, in as many pieces as its reader
 * wants (stream mode writes a lazy buffer's 64 KiB slices one by one, as the application writes
 * them). The unread rest waits in the store connection's socket, where TCP holds the store back.
 */
export class SplicedBody {
  readonly length: number;
  #left: number;
  /** Body bytes that came with the head: they go first, through JavaScript. */
  #early: Buffer;
  readonly #connection: StoreConnection;
  readonly #options: SplicedFetcherOptions;
  readonly #done: (reusable: boolean) => void;
  #failed = false;

  /** @internal Made by {@link SplicedFetcher.open}. */
  constructor(
    connection: StoreConnection,
    length: number,
    early: Buffer,
    options: SplicedFetcherOptions,
    done: (reusable: boolean) => void,
  ) {
    this.#connection = connection;
    this.length = length;
    this.#left = length;
    this.#early = early.subarray(0, length);
    this.#options = options;
    this.#done = done;
    // Bytes past the body would be taken for the next answer: such a connection is not reused.
    this.#reusableAtEnd = early.length <= length;
  }

  readonly #reusableAtEnd: boolean;
  #finished = false;

  /** Bytes not delivered yet. */
  get remaining(): number {
    return this.#left;
  }

  /**
   * Bytes of the last piece that reached its destination (those that came with the head and
   * those the kernel spliced): after a failure, where a caller could resume on a new body.
   */
  get delivered(): number {
    return this.#delivered;
  }

  #delivered = 0;

  /** False once it failed or was given up: nothing more can be read from it. */
  get usable(): boolean {
    return !this.#failed && this.#connection.usable;
  }

  /**
   * Delivers the next `count` bytes (at most {@link remaining}) into `target`. Rejects with an
   * OdbError (ODB_ERR_FETCH_ABORTED with a DestinationClosedError as cause when the destination
   * went away); the body is then given up, and the caller cuts the destination short if it had
   * started.
   */
  async next(count: number, target: SpliceTarget): Promise<void> {
    if (this.#failed) throw new OdbError('ODB_ERR_FETCH_ABORTED', 'store body given up');
    if (!Number.isSafeInteger(count) || count < 0 || count > this.#left) {
      throw new OdbError('ODB_ERR_OUT_OF_RANGE', `${count} of ${this.#left} body bytes left`);
    }
    try {
      await this.#deliver(count, target);
    } catch (err) {
      this.abandon();
      throw classify(err, undefined);
    }
    this.#left -= count;
    if (this.#left === 0) this.#finish(this.#reusableAtEnd);
  }

  /** Gives up the rest: the connection closes (its unread bytes belong to this body). */
  abandon(): void {
    if (this.#failed || this.#finished) return;
    this.#failed = true;
    this.#finish(false);
  }

  async #deliver(count: number, target: SpliceTarget): Promise<void> {
    this.#delivered = 0;
    const destination = target.start(count);
    if (!destination) throw closedDestination();
    const early = this.#early.subarray(0, count);
    this.#early = this.#early.subarray(early.length);
    if (early.length > 0) {
      const written = destination.write(early);
      if (written instanceof Promise && !(await written)) throw closedDestination();
      this.#delivered = early.length;
    }
    const destinationIdleMs = this.#options.destinationIdleMs ?? this.#options.idleTimeoutMs;
    const flushed = whenFlushed(
      destination.socket,
      destinationIdleMs > 0 ? destinationIdleMs : 2 ** 31 - 1,
      destination.flushScope,
    );
    if (!(await flushed)) throw closedDestination();
    const rest = count - early.length;
    if (rest === 0) return;
    const connection = this.#connection;
    const source = lendableFd(connection.socket);
    if (typeof source !== 'number')
      throw new OdbError('ODB_ERR_FETCH_ABORTED', 'store connection lost');
    // Looked at again now, in the same turn as the splice starts: a socket destroyed while the
    // head was awaited has closed its descriptor, and the number may already name another
    // socket or file. Nothing can close it between this check and the engine's duplicate.
    if (lendableFd(destination.socket) !== destination.fd) throw closedDestination();
    const transfer = this.#options.engine.splice(
      source,
      destination.fd,
      rest,
      this.#options.idleTimeoutMs,
      destinationIdleMs,
    );
    const cancel = (): void => transfer.cancel();
    destination.socket.once('close', cancel);
    const unlend = markLent(destination.socket, rest);
    const ended = await transfer.ended;
    unlend();
    destination.socket.off('close', cancel);
    countKernelBytes(destination.socket, 'written', ended.written);
    countKernelBytes(connection.socket, 'read', ended.written);
    this.#delivered += ended.written;
    if (ended.errno === 0) return;
    if (ended.side === 'source') {
      const code = ended.reason === 'ETIMEDOUT' ? 'ODB_ERR_FETCH_TIMEOUT' : 'ODB_ERR_FETCH_ABORTED';
      const at = this.length - this.#left + early.length + ended.written;
      throw new OdbError(code, `store body: ${ended.reason} after ${at} of ${this.length} bytes`);
    }
    throw closedDestination(ended.reason);
  }

  #finish(reusable: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#done(reusable && this.#connection.usable);
  }
}

/** Fetches whose bodies the kernel splices into their destination. */
export class SplicedFetcher {
  readonly #options: SplicedFetcherOptions;
  readonly #idle = new Map<string, StoreConnection[]>();

  constructor(options: SplicedFetcherOptions) {
    this.#options = options;
  }

  /**
   * Fetches the descriptor's range into `target`. Resolves with the bytes delivered once every
   * one is in the destination socket; rejects with an OdbError (ODB_ERR_FETCH_ABORTED with a
   * DestinationClosedError as cause when the destination went away), after which the caller
   * cuts the destination short if it had started.
   */
  async fetch(
    descriptor: Descriptor,
    target: SpliceTarget,
    releaseOnDone: boolean,
  ): Promise<number> {
    const body = await this.open(descriptor, releaseOnDone);
    await body.next(body.length, target);
    return body.length;
  }

  /**
   * Asks the store for the descriptor's range and reads the response head: the body, to be
   * delivered piece by piece. Rejects with an OdbError when the store refuses or cannot be
   * reached (nothing was delivered then).
   */
  async open(descriptor: Descriptor, releaseOnDone: boolean): Promise<SplicedBody> {
    const connection = this.#take(descriptor.endpoint);
    try {
      return await this.#openOn(connection, descriptor, releaseOnDone);
    } catch (err) {
      // A kept-alive connection the store closed as it was taken (its idle timeout): nothing was
      // answered, so the same GET goes again on a new connection, once.
      if (connection.served === 0 || connection.answered || !isStaleFailure(err)) throw err;
      return this.#openOn(this.#open(descriptor.endpoint), descriptor, releaseOnDone);
    }
  }

  async #openOn(
    connection: StoreConnection,
    descriptor: Descriptor,
    releaseOnDone: boolean,
  ): Promise<SplicedBody> {
    const length = descriptor.length;
    let reusable = false;
    const deadline = <T>(promise: Promise<T>): Promise<T> =>
      withTimeout(promise, this.#options.fetchTimeoutMs, () => {
        const code = connection.connecting ? 'ODB_ERR_STORE_UNREACHABLE' : 'ODB_ERR_FETCH_TIMEOUT';
        connection.destroy();
        return new OdbError(code, `no response head within ${this.#options.fetchTimeoutMs} ms`);
      });
    try {
      const request =
        `GET ${payloadPath(descriptorToText(descriptor))} HTTP/1.1\r\nhost: ${descriptor.endpoint}\r\n` +
        (releaseOnDone ? `${releaseHeader}: ${releaseOnComplete}\r\n` : '') +
        '\r\n';
      const head = await deadline(connection.request(request));
      const announced = head.headers['content-length'];
      if (head.status !== 200) {
        const size = Number(announced ?? 0);
        if (!/^\d+$/.test(announced ?? '0') || size > maxHeadBytes) {
          throw refusalError(head.status, head.headers[errorHeader], '');
        }
        const body = await deadline(connection.readBody(head.rest, size));
        reusable = true;
        throw refusalError(head.status, head.headers[errorHeader], body.toString('utf8'));
      }
      if (announced !== String(length)) {
        throw new OdbError(
          'ODB_ERR_PROTOCOL',
          `store announced ${announced} bytes, expected ${length}`,
        );
      }
      return new SplicedBody(connection, length, head.rest, this.#options, (again) => {
        if (again) this.#giveBack(descriptor.endpoint, connection);
        else connection.destroy();
      });
    } catch (err) {
      if (reusable && connection.usable) this.#giveBack(descriptor.endpoint, connection);
      else connection.destroy();
      throw classify(err, undefined);
    }
  }

  /** Closes every idle connection. */
  close(): void {
    for (const list of this.#idle.values()) for (const c of list) c.destroy();
    this.#idle.clear();
  }

  #take(endpoint: string): StoreConnection {
    const list = this.#idle.get(endpoint);
    while (list && list.length > 0) {
      const connection = list.pop()!;
      if (connection.usable) {
        connection.keptIdle(undefined);
        return connection;
      }
    }
    return this.#open(endpoint);
  }

  #open(endpoint: string): StoreConnection {
    return new StoreConnection(endpoint, this.#options.onSocket, this.#options.connect);
  }

  #giveBack(endpoint: string, connection: StoreConnection): void {
    const idleMs = Math.min(this.#options.keepAliveMs ?? 30_000, connection.idleMs ?? Infinity);
    // A store that keeps idle connections for a second or less: not worth keeping.
    if (!(idleMs > 0)) return connection.destroy();
    let list = this.#idle.get(endpoint);
    if (!list) this.#idle.set(endpoint, (list = []));
    list.push(connection);
    const forget = (): void => {
      const at = list.indexOf(connection);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0 && this.#idle.get(endpoint) === list) this.#idle.delete(endpoint);
    };
    // Reading again: a store closing an idle connection is seen, and the connection dropped.
    connection.socket.resume();
    connection.keptIdle(
      idleMs,
      () => {
        forget();
        connection.destroy();
      },
      forget,
    );
  }
}

/** A failure of a request that never got an answer: the connection was already closed. */
function isStaleFailure(err: unknown): boolean {
  const codes = [
    (err as { code?: string }).code,
    (err as { cause?: { code?: string } }).cause?.code,
  ];
  return codes.some((c) => c === 'ODB_ERR_FETCH_ABORTED' || c === 'ECONNRESET' || c === 'EPIPE');
}

function closedDestination(reason?: string): OdbError {
  const cause = new DestinationClosedError();
  return new OdbError(
    'ODB_ERR_FETCH_ABORTED',
    `destination closed${reason ? ` (${reason})` : ''}`,
    { cause },
  );
}

/** `promise`, or after `ms` the error `onTimeout` gives. */
function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => OdbError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
