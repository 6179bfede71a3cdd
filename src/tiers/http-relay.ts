/**
 * The HTTP/1.1 reverse proxy core shared by the `fe` and `is` tiers: Node's http server facing
 * clients, undici pools (keep-alive, round robin) facing upstreams, bodies streamed both ways
 * with backpressure. It knows nothing of ODB; the front end adds that through hooks.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { Pool } from 'undici';
import { observedConnector } from '../http/connector.js';
import { silentLogger, type Logger } from '../log.js';
import { endToEndHeaders } from '../http/hop-by-hop.js';
import {
  DestinationClosedError,
  ResponseSink,
  type ResponseHeaders,
} from '../http/response-sink.js';

/** Returned by {@link RelayHooks.responseHead} to let the relay forward the response as usual. */
export const relayAsUsual = Symbol('relayAsUsual');

/** Where a tier changes what the relay does. */
export interface RelayHooks {
  /** Adjusts the (end-to-end) headers sent upstream, in place. */
  requestHeaders?(headers: Record<string, string | string[]>, req: IncomingMessage): void;
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
  readonly hooks?: RelayHooks;
  /** Called with every upstream connection (for byte counters). */
  readonly onUpstreamSocket?: (socket: Socket) => void;
  readonly logger?: Logger;
}

/** Counters of a relay; exposed as metrics. */
export interface HttpRelayStats {
  requests: number;
  /** Upstream body bytes forwarded to clients. */
  relayedBodyBytes: number;
  upstreamFailures: number;
  clientAborts: number;
}

/** A reverse proxy over a round-robin set of upstream pools. */
export class HttpRelay {
  readonly stats: HttpRelayStats = {
    requests: 0,
    relayedBodyBytes: 0,
    upstreamFailures: 0,
    clientAborts: 0,
  };
  readonly #pools: Pool[];
  readonly #hooks: RelayHooks;
  readonly #log: Logger;
  #next = 0;

  constructor(options: HttpRelayOptions) {
    if (options.upstreams.length === 0) throw new Error('a relay needs at least one upstream');
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
    this.#log = options.logger ?? silentLogger;
  }

  /** The request listener: relays one request. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.stats.requests++;
    const headers = endToEndHeaders(req.headers) as Record<string, string | string[]>;
    this.#hooks.requestHeaders?.(headers, req);
    const length = req.headers['content-length'];
    const hasBody =
      (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
    const pool = this.#pools[this.#next]!;
    this.#next = (this.#next + 1) % this.#pools.length;
    const sink = new ResponseSink({
      onHead: (statusCode, upstreamHeaders, statusMessage) => {
        const hook = this.#hooks.responseHead;
        if (hook) {
          const custom = hook(req, res, statusCode, upstreamHeaders, statusMessage);
          if (custom !== relayAsUsual) return custom;
        }
        const out = endToEndHeaders(
          upstreamHeaders,
          this.#hooks.dropResponseHeader,
        ) as OutgoingHttpHeaders;
        if (statusMessage) res.writeHead(statusCode, statusMessage, out);
        else res.writeHead(statusCode, out);
        return res;
      },
      onDone: (err, bytes) => {
        this.stats.relayedBodyBytes += bytes;
        if (err) this.#failed(err, req, res);
      },
    });
    pool.dispatch(
      { path: req.url ?? '/', method: req.method ?? 'GET', headers, body: hasBody ? req : null },
      sink,
    );
  };

  #failed(err: Error, req: IncomingMessage, res: ServerResponse): void {
    if (err instanceof DestinationClosedError) {
      this.stats.clientAborts++;
      return;
    }
    this.stats.upstreamFailures++;
    const code = (err as { code?: string }).code;
    this.#log.warn({ err: err.message, code, url: req.url }, 'upstream request failed');
    if (res.headersSent) {
      if (!res.destroyed) res.destroy(err);
      return;
    }
    const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
    const body = timeout ? 'Gateway Timeout\n' : 'Bad Gateway\n';
    res
      .writeHead(timeout ? 504 : 502, {
        'content-type': 'text/plain',
        'content-length': body.length,
      })
      .end(body);
  }

  /** Closes every upstream connection. */
  async close(): Promise<void> {
    await Promise.all(this.#pools.map((pool) => pool.destroy()));
  }
}
