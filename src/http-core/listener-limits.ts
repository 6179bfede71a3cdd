/**
 * Limits of an HTTP listener that anyone may reach: connections, request-head size, header count,
 * requests per connection, time to send a request head (which also bounds an idle connection
 * before its first request), time between requests, and time and rate to send a request body.
 * Node's http server enforces most of them itself once configured; this module configures it,
 * adds what Node lacks (a header-count limit that answers instead of silently dropping headers, a
 * body deadline that grows with the bytes received, like Apache's mod_reqtimeout MinRate), and
 * counts every limit hit so that operators can see it.
 */
import type {
  IncomingMessage,
  RequestListener,
  Server,
  ServerOptions,
  ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { connectionReleased, requestHasBody } from './message.js';

/** The limits of one listener. */
export interface ListenerLimits {
  /** Open connections; further ones are closed at once. */
  readonly maxConnections: number;
  /** Bytes of a request line plus headers (Node's `maxHeaderSize`); larger heads get 431. */
  readonly maxHeaderBytes: number;
  /** Header fields per request; more get 431. */
  readonly maxHeaders: number;
  /** Requests served on one connection before it is closed (0: unlimited). */
  readonly maxRequestsPerConnection: number;
  /**
   * Requests a client may send ahead on one connection (pipelining) while one is handled; more
   * close the connection.
   */
  readonly maxPipelined: number;
  /** Time to receive a whole request head, counted from the connection or the previous response. */
  readonly headerTimeoutMs: number;
  /** Idle time allowed between two requests of a keep-alive connection. */
  readonly keepAliveTimeoutMs: number;
  /**
   * A request body may take `bodyTimeoutMs` plus one second per `bodyMinRate` bytes received
   * (time spent waiting for our own upstream to take the bytes does not count); past it: 408.
   */
  readonly bodyTimeoutMs: number;
  /** Bytes per second that extend a body's deadline (see {@link bodyTimeoutMs}). */
  readonly bodyMinRate: number;
}

/** Defaults for a listener facing clients (nginx's and Apache's defaults are the reference). */
export const defaultListenerLimits: ListenerLimits = Object.freeze({
  maxConnections: 4096,
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  maxRequestsPerConnection: 1000,
  maxPipelined: 32,
  headerTimeoutMs: 20_000,
  keepAliveTimeoutMs: 65_000,
  bodyTimeoutMs: 20_000,
  bodyMinRate: 1024,
});

/** The limits a listener can hit, as metric labels. */
export type LimitHit =
  | 'connections'
  | 'header_size'
  | 'headers'
  | 'requests_per_connection'
  | 'pipelined'
  | 'header_timeout'
  | 'body_timeout'
  | 'bad_request';

/** What a guard knows of one connection. */
interface ConnectionState {
  /** Requests handled so far. */
  served: number;
  /** A request is being handled; the ones pipelined behind it wait. */
  busy: boolean;
  readonly waiting: { readonly req: IncomingMessage; readonly res: ServerResponse }[];
}

/** A request whose body is being received. */
interface BodyWatch {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly socket: Socket;
  readonly startRead: number;
  /** Time spent waiting for the client, in ms. */
  waitedMs: number;
}

const bodyCheckMs = 500;

/**
 * Applies {@link ListenerLimits} to an http server and counts their hits. Create the server with
 * {@link serverOptions}, wrap its request listener with {@link wrap}, then {@link attach} it.
 */
export class ListenerGuard {
  readonly limits: ListenerLimits;
  readonly hits: Record<LimitHit, number> = {
    connections: 0,
    header_size: 0,
    headers: 0,
    requests_per_connection: 0,
    pipelined: 0,
    header_timeout: 0,
    body_timeout: 0,
    bad_request: 0,
  };
  readonly #connections = new WeakMap<Socket, ConnectionState>();
  readonly #bodies = new Set<BodyWatch>();
  #bodyTimer: NodeJS.Timeout | undefined;

  constructor(limits: Partial<ListenerLimits> = {}) {
    this.limits = { ...defaultListenerLimits, ...limits };
  }

  /** Options for `http.createServer`. */
  serverOptions(): ServerOptions {
    const l = this.limits;
    return {
      maxHeaderSize: l.maxHeaderBytes,
      headersTimeout: l.headerTimeoutMs,
      // The body has its own rate-based deadline; Node's requestTimeout would cut a large upload
      // on a slow link however steadily it progresses.
      requestTimeout: 0,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(100, l.headerTimeoutMs / 4)),
    };
  }

  /** Sets the server's own limits and listens for their hits. */
  attach(server: Server): void {
    const l = this.limits;
    server.maxConnections = l.maxConnections;
    // One more than allowed, so that a request over the limit can be told apart and answered.
    server.maxHeadersCount = l.maxHeaders + 1;
    server.maxRequestsPerSocket = l.maxRequestsPerConnection;
    server.on('drop', () => this.hits.connections++);
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
      this.#clientError(err, socket),
    );
    server.on('close', () => {
      clearInterval(this.#bodyTimer);
      this.#bodyTimer = undefined;
    });
  }

  /**
   * Wraps a request listener. Requests of one connection are handled one at a time, as nginx
   * does: Node parses pipelined requests ahead and emits each at once, so a connection could
   * otherwise start any number of upstream requests, fetches or file reads whose responses wait
   * behind an unread one (and responses queued that way never see their client leave). Then:
   * refuses requests over the header-count limit, counts requests per connection, watches bodies.
   */
  wrap(handler: RequestListener): RequestListener {
    return (req, res) => {
      const socket = req.socket;
      let conn = this.#connections.get(socket);
      if (!conn) {
        conn = { served: 0, busy: false, waiting: [] };
        this.#connections.set(socket, conn);
        const state = conn;
        socket.once('close', () => (state.waiting.length = 0));
      }
      if (!conn.busy) {
        this.#handle(conn, socket, req, res, handler);
        return;
      }
      if (conn.waiting.length >= this.limits.maxPipelined) {
        this.hits.pipelined++;
        socket.destroy();
        return;
      }
      conn.waiting.push({ req, res });
    };
  }

  #handle(
    conn: ConnectionState,
    socket: Socket,
    req: IncomingMessage,
    res: ServerResponse,
    handler: RequestListener,
  ): void {
    conn.busy = true;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      conn.busy = false;
      const next = conn.waiting.shift();
      // On the next tick: Node hands the socket to the next response in its own 'finish' listener.
      if (next) process.nextTick(() => this.#handle(conn, socket, next.req, next.res, handler));
    };
    res.once('finish', release);
    res.once('close', release);
    res.once(connectionReleased, release);
    if (req.rawHeaders.length / 2 > this.limits.maxHeaders) {
      this.hits.headers++;
      res.writeHead(431, { 'content-length': 0, connection: 'close' }).end();
      return;
    }
    const max = this.limits.maxRequestsPerConnection;
    if (max > 0 && ++conn.served === max) {
      this.hits.requests_per_connection++;
      // Node marks this response `Connection: close` but answers requests pipelined behind it
      // with 503 and leaves the connection open: close it once this response is out.
      res.once('finish', () => socket.destroySoon());
    }
    if (requestHasBody(req)) this.#watchBody(req, res, socket);
    handler(req, res);
  }

  #clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    let status = 400;
    if (code === 'HPE_HEADER_OVERFLOW') {
      this.hits.header_size++;
      status = 431;
    } else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      this.hits.header_timeout++;
      status = 408;
    } else {
      this.hits.bad_request++;
    }
    // Node's own answer when nobody listens, plus the count; nothing if a response had started.
    const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
      ?.headersSent;
    if (!started) {
      socket.end(
        `HTTP/1.1 ${status} ${statusText[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
      );
    }
    socket.destroySoon();
  }

  #watchBody(req: IncomingMessage, res: ServerResponse, socket: Socket): void {
    const watch: BodyWatch = { req, res, socket, startRead: socket.bytesRead, waitedMs: 0 };
    this.#bodies.add(watch);
    const done = (): void => void this.#bodies.delete(watch);
    req.once('end', done);
    req.once('close', done);
    if (!this.#bodyTimer) {
      this.#bodyTimer = setInterval(() => this.#checkBodies(), bodyCheckMs);
      this.#bodyTimer.unref();
    }
  }

  #checkBodies(): void {
    const { bodyTimeoutMs, bodyMinRate } = this.limits;
    for (const watch of this.#bodies) {
      // The socket captured when the request arrived: Node sets `req.socket` to null once the
      // response is done with it.
      const { req, res, socket } = watch;
      if (req.complete || req.destroyed) {
        this.#bodies.delete(watch);
        continue;
      }
      // Bytes waiting in the request's buffer are ours to take: the client is not the slow one.
      if (req.readableLength >= req.readableHighWaterMark) continue;
      watch.waitedMs += bodyCheckMs;
      const received = socket.bytesRead - watch.startRead;
      if (watch.waitedMs <= bodyTimeoutMs + (received / bodyMinRate) * 1000) continue;
      this.#bodies.delete(watch);
      this.hits.body_timeout++;
      if (!res.headersSent) res.writeHead(408, { 'content-length': 0, connection: 'close' }).end();
      // Whatever was answered, the rest of this body will not come in time: end the connection.
      socket.destroySoon();
      setTimeout(() => socket.destroy(), 1000).unref();
    }
    if (this.#bodies.size === 0) {
      clearInterval(this.#bodyTimer);
      this.#bodyTimer = undefined;
    }
  }
}

const statusText: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};
