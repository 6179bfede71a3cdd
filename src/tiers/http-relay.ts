/**
 * The HTTP/1.1 reverse proxy core shared by the `fe` and `is` tiers: Node's http server facing
 * clients, undici pools (keep-alive, round robin) facing upstreams, bodies streamed both ways
 * with backpressure. It knows nothing of ODB; the front end adds that through hooks.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { Pool } from 'undici';
import { observedConnector } from '../http-core/connector.js';
import { OdbError, httpStatusOf } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';
import { endToEndHeaders } from '../http-core/hop-by-hop.js';
import { requestHasBody } from '../http-core/message.js';
import { parseRequestTarget } from '../http-core/request-target.js';
import {
  DestinationClosedError,
  ResponseSink,
  type ResponseHeaders,
} from '../http-core/response-sink.js';

/**
 * Request headers a relay never forwards beyond the hop-by-hop ones. `Expect`: Node's server has
 * already answered `100 Continue` to the client (it does when no 'checkContinue' listener is
 * set), so the body is on its way; the upstream leg is a fresh exchange that expects nothing.
 */
function isRequestOnlyHop(name: string): boolean {
  return name === 'expect';
}

/** A short plain-text answer; `close` also ends the connection (after a request not understood). */
export function answerPlain(
  res: ServerResponse,
  status: number,
  body: string,
  close = false,
): void {
  if (res.headersSent) return;
  const headers: OutgoingHttpHeaders = {
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(body),
  };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers).end(body);
}

/** The first time a request goes upstream, or its one re-send. */
export type RelayAttempt = 'first' | 'retry';

/** Returned by {@link RelayHooks.responseHead} to let the relay forward the response as usual. */
export const relayAsUsual = Symbol('relayAsUsual');

/** Where a tier changes what the relay does. */
export interface RelayHooks {
  /**
   * Adjusts the (end-to-end) headers sent upstream, in place. `attempt` is 'retry' when the
   * request is sent again through {@link HttpRelay.relayAgain}.
   */
  requestHeaders?(
    headers: Record<string, string | string[]>,
    req: IncomingMessage,
    attempt: RelayAttempt,
  ): void;
  /**
   * Sees each upstream response head first. Return {@link relayAsUsual}, or the writable that
   * receives the upstream body (undefined: discard it) after answering the client yourself.
   */
  responseHead?(
    req: IncomingMessage,
    res: ServerResponse,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage: string,
    attempt: RelayAttempt,
  ): Writable | undefined | typeof relayAsUsual;
  /** Drops response headers (beyond hop-by-hop ones) before they reach the client. */
  dropResponseHeader?(name: string): boolean;
}

/** Options of an {@link HttpRelay}. */
export interface HttpRelayOptions {
  /** Upstream origins (`http://host:port`), used round robin. */
  readonly upstreams: readonly string[];
  /** Keep-alive connections per upstream. Default 64. */
  readonly connectionsPerUpstream?: number;
  /** Longest wait for an upstream response head, in ms. Default 60 000. */
  readonly headersTimeoutMs?: number;
  /** Longest pause in an upstream body, in ms. Default 60 000. */
  readonly bodyTimeoutMs?: number;
  /** Bounds of the wait for a free upstream connection. */
  readonly queue?: Partial<UpstreamQueueLimits>;
  readonly hooks?: RelayHooks;
  /** Called with every upstream connection (for byte counters). */
  readonly onUpstreamSocket?: (socket: Socket) => void;
  readonly logger?: Logger;
}

/** How long, and how many, requests may wait for a free upstream connection. */
export interface UpstreamQueueLimits {
  /** Requests waiting at once (across upstreams); beyond it new ones get 503 at once. */
  readonly maxQueued: number;
  /** Longest wait for a connection; past it the client gets 503. */
  readonly timeoutMs: number;
}

export const defaultUpstreamQueue: UpstreamQueueLimits = Object.freeze({
  maxQueued: 1024,
  timeoutMs: 10_000,
});

/** Counters of a relay; exposed as metrics. */
export interface HttpRelayStats {
  requests: number;
  /** Requests answered 503 because too many were waiting for a connection, or waited too long. */
  upstreamQueueFull: number;
  upstreamQueueTimeouts: number;
  /** Upstream body bytes forwarded to clients. */
  relayedBodyBytes: number;
  upstreamFailures: number;
  clientAborts: number;
}

/** A reverse proxy over a round-robin set of upstream pools. */
export class HttpRelay {
  readonly stats: HttpRelayStats = {
    requests: 0,
    upstreamQueueFull: 0,
    upstreamQueueTimeouts: 0,
    relayedBodyBytes: 0,
    upstreamFailures: 0,
    clientAborts: 0,
  };
  readonly #pools: Pool[];
  readonly #hooks: RelayHooks;
  readonly #log: Logger;
  readonly #queue: UpstreamQueueLimits;
  /** Requests undici holds that are not on a connection yet. */
  #queued = 0;
  #next = 0;

  constructor(options: HttpRelayOptions) {
    if (options.upstreams.length === 0) {
      throw new OdbError('ODB_ERR_INVALID_OPTION', 'a relay needs at least one upstream');
    }
    const connect = observedConnector(10_000, options.onUpstreamSocket);
    this.#pools = options.upstreams.map(
      (origin) =>
        new Pool(origin, {
          connections: options.connectionsPerUpstream ?? 64,
          headersTimeout: options.headersTimeoutMs ?? 60_000,
          bodyTimeout: options.bodyTimeoutMs ?? 60_000,
          keepAliveTimeout: 30_000,
          connect,
        }),
    );
    this.#hooks = options.hooks ?? {};
    this.#queue = { ...defaultUpstreamQueue, ...options.queue };
    this.#log = options.logger ?? silentLogger;
  }

  /** The request listener: relays one request. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.stats.requests++;
    this.#relay(req, res, 'first');
  };

  /**
   * True when `req` may be sent upstream once more after its first answer was not used: a
   * method that is safe to repeat (RFC 9110 §9.2.2) and no request body (it was consumed).
   */
  canRelayAgain(req: IncomingMessage): boolean {
    return (
      (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') &&
      !requestHasBody(req)
    );
  }

  /**
   * Sends `req` upstream once more (see {@link canRelayAgain}); the hooks see attempt 'retry'.
   * For a tier that discarded the first answer before anything reached the client.
   */
  relayAgain(req: IncomingMessage, res: ServerResponse): void {
    this.#relay(req, res, 'retry');
  }

  #relay(req: IncomingMessage, res: ServerResponse, attempt: RelayAttempt): void {
    const target = parseRequestTarget(req.method, req.url);
    if (target.form === 'invalid') {
      this.#log.debug({ reason: target.reason }, 'request-target refused');
      answerPlain(res, 400, 'Bad Request\n', true);
      return;
    }
    if (target.form === 'asterisk') {
      // `OPTIONS *` asks about this server, not about a resource upstream (and upstream clients
      // cannot send an asterisk-form target): the answer is that it is here.
      res.writeHead(204).end();
      return;
    }
    const headers = endToEndHeaders(req.headers, isRequestOnlyHop) as Record<
      string,
      string | string[]
    >;
    // absolute-form: the target's authority wins over Host (RFC 9112 §3.2.2).
    if (target.authority !== undefined) headers.host = target.authority;
    if (this.#queued >= this.#queue.maxQueued) {
      this.stats.upstreamQueueFull++;
      answerPlain(
        res,
        httpStatusOf('ODB_ERR_UPSTREAM_BUSY'),
        'Service Unavailable: every upstream connection is busy\n',
      );
      return;
    }
    this.#hooks.requestHeaders?.(headers, req, attempt);
    const hasBody = requestHasBody(req);
    const pool = this.#pools[this.#next]!;
    this.#next = (this.#next + 1) % this.#pools.length;
    // Set once a hook answers the client itself: the rest of this upstream exchange is no longer
    // the client's response, so its errors must not touch `res`.
    let takenOver = false;
    const sink = new ResponseSink({
      onHead: (statusCode, upstreamHeaders, statusMessage) => {
        const hook = this.#hooks.responseHead;
        if (hook) {
          const custom = hook(req, res, statusCode, upstreamHeaders, statusMessage, attempt);
          if (custom !== relayAsUsual) {
            takenOver = true;
            return custom;
          }
        }
        const out = endToEndHeaders(
          upstreamHeaders,
          this.#hooks.dropResponseHeader,
        ) as OutgoingHttpHeaders;
        if (statusMessage) res.writeHead(statusCode, statusMessage, out);
        else res.writeHead(statusCode, out);
        return res;
      },
      onDequeued: () => {
        this.#queued--;
        clearTimeout(queueTimer);
      },
      onDone: (err, bytes) => {
        res.off('close', clientGone);
        this.stats.relayedBodyBytes += bytes;
        if (err && takenOver)
          this.#log.debug({ err: err.message }, 'discarded upstream body failed');
        else if (err) this.#failed(err, req, res);
      },
    });
    // A client that leaves (or is cut by a limit) ends the upstream exchange too: otherwise a
    // request still waiting for a connection, or whose body will never complete, would hold an
    // upstream connection until undici's own timeouts.
    const clientGone = (): void => sink.abort(new DestinationClosedError());
    res.once('close', clientGone);
    this.#queued++;
    const queueTimer = setTimeout(() => {
      this.stats.upstreamQueueTimeouts++;
      sink.abort(
        new OdbError(
          'ODB_ERR_UPSTREAM_BUSY',
          `no upstream connection free within ${this.#queue.timeoutMs} ms`,
        ),
      );
    }, this.#queue.timeoutMs);
    pool.dispatch(
      { path: target.path, method: req.method ?? 'GET', headers, body: hasBody ? req : null },
      sink,
    );
  }

  #failed(err: Error, req: IncomingMessage, res: ServerResponse): void {
    if (err instanceof DestinationClosedError) {
      this.stats.clientAborts++;
      return;
    }
    const code = (err as { code?: string }).code;
    if (!res.headersSent && (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED')) {
      // The request itself cannot be relayed (Node's parser accepted what the upstream client
      // refuses): the client's fault, not the upstream's.
      this.#log.info({ err: err.message, code }, 'request not relayable');
      answerPlain(res, 400, 'Bad Request\n', true);
      return;
    }
    if (code === 'ODB_ERR_UPSTREAM_BUSY' && !res.headersSent) {
      // Counted in upstreamQueueTimeouts: the upstream did not fail, it was busy.
      this.#log.info({ err: err.message, url: req.url }, 'no upstream connection: answered 503');
      answerPlain(
        res,
        httpStatusOf('ODB_ERR_UPSTREAM_BUSY'),
        'Service Unavailable: every upstream connection is busy\n',
      );
      return;
    }
    this.stats.upstreamFailures++;
    this.#log.warn({ err: err.message, code, url: req.url }, 'upstream request failed');
    if (res.headersSent) {
      if (!res.destroyed) res.destroy(err);
      return;
    }
    const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
    answerPlain(res, timeout ? 504 : 502, timeout ? 'Gateway Timeout\n' : 'Bad Gateway\n');
  }

  /** Closes every upstream connection. */
  async close(): Promise<void> {
    await Promise.all(this.#pools.map((pool) => pool.destroy()));
  }
}
