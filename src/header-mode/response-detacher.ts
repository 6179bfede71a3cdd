/**
 * Ends a captured response on the wire at its descriptor head while the handler goes on writing.
 *
 * A descriptor head (`Content-Length: 0`) is a complete HTTP response: the peer may send the next
 * request on the connection at once. Node's server, though, answers that request only once `res`
 * has emitted 'finish', which it does when the handler ends it — for an open payload, when the
 * front end has fetched the body, however slowly its client reads. So the head would hold the
 * connection for as long as the body is read (issue 13, item 4).
 *
 * Detaching hands the connection over without ending `res` under the handler: Node's server gets
 * its 'finish' (its own listener, `resOnFinish`, is called directly and removed: it detaches the
 * socket and starts the next request, or ends a connection that is not kept alive), and the
 * handler keeps a response that is still open. From then on its lifecycle is the payload's:
 * `end()` emits 'prefinish', 'finish' and 'close' (writableEnded, writableFinished and destroyed
 * follow), `destroy()` fails the payload and emits 'close', and so does the store abandoning the
 * payload (the client went away, or it expired), so that a piping producer stops. The 'close'
 * Node emits on `res` once it is done with the socket is not the handler's business and is held
 * back.
 *
 * This relies on Node's server internals (Node 20: the bound `resOnFinish` 'finish' listener and
 * `emitCloseNT`); when that listener cannot be found, {@link ResponseDetacher.prepare} returns
 * undefined and the capture closes the connection instead (`Connection: close`).
 *
 * Measured against closing the connection: docs/architecture.md, "Captured responses release
 * their connection at the head".
 */
import type { ServerResponse } from 'node:http';
import { connectionReleased } from '../http-core/message.js';

type Listener = (...args: unknown[]) => void;
type Callback = (err?: Error | null) => void;

/** Name of the 'finish' listener by which Node's http server releases the connection. */
const nodeReleaseListenerName = 'bound resOnFinish';

/** The mutable internals of a ServerResponse the detacher drives (plain properties in Node 20). */
interface ResponseState {
  finished: boolean;
  destroyed: boolean;
  _closed: boolean;
}

export class ResponseDetacher {
  readonly #res: ServerResponse;
  readonly #release: Listener;
  #detached = false;
  #ended = false;
  #closed = false;
  /** True while the detacher itself emits 'close'; any other 'close' after detaching is Node's. */
  #emittingClose = false;

  private constructor(res: ServerResponse, release: Listener) {
    this.#res = res;
    this.#release = release;
  }

  /**
   * Finds Node's connection release on a fresh response (call it before the handler adds
   * 'finish' listeners); undefined when this server does not release connections that way.
   */
  static prepare(res: ServerResponse): ResponseDetacher | undefined {
    const release = res
      .rawListeners('finish')
      .find((listener) => listener.name === nodeReleaseListenerName) as Listener | undefined;
    return release ? new ResponseDetacher(res, release) : undefined;
  }

  /** True once the connection was handed over. */
  get detached(): boolean {
    return this.#detached;
  }

  /**
   * Hands the connection over; the head must have been flushed (`res.flushHeaders()`). A response
   * queued behind a pipelined one gets its socket (and sends its head) later: it detaches then.
   */
  detach(): void {
    const res = this.#res;
    this.#detached = true;
    const shadow = res as unknown as { emit: ServerResponse['emit'] };
    shadow.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'close' && !this.#emittingClose) {
        // Node's emitCloseNT: the wire exchange is over, the handler's response is not.
        const state = res as unknown as ResponseState;
        state.destroyed = this.#closed;
        state._closed = this.#closed;
        return false;
      }
      return Object.getPrototypeOf(res).emit.call(res, event, ...args);
    };
    if (res.socket) this.#handOver();
    else res.once('socket', () => process.nextTick(() => this.#handOver()));
  }

  /** The handler's `end()` of a detached response: the payload is complete. */
  end(callback?: Callback): void {
    if (this.#ended || this.#closed) return;
    this.#ended = true;
    const res = this.#res;
    (res as unknown as ResponseState).finished = true;
    if (callback) res.once('finish', callback);
    // Like Node's: 'finish' after end() returned (listeners added right after it see it).
    process.nextTick(() => {
      res.emit('prefinish');
      res.emit('finish');
      process.nextTick(() => this.#close());
    });
  }

  /** The handler's `destroy()`, or the payload abandoned: the response closes unfinished. */
  destroy(): void {
    if (this.#ended || this.#closed) return;
    this.#close();
  }

  #handOver(): void {
    const res = this.#res;
    res.removeListener('finish', this.#release);
    this.#release.call(res);
    res.emit(connectionReleased);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const state = this.#res as unknown as ResponseState;
    state.destroyed = true;
    state._closed = true;
    this.#emittingClose = true;
    try {
      this.#res.emit('close');
    } finally {
      this.#emittingClose = false;
    }
  }
}
