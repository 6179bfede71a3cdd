/**
 * The application's listening servers, as stream mode's graceful exit needs them (shutdown.ts):
 * which ones are listening, the connections they accepted, and HTTP responses written while they
 * drain. Fed by the `net.Server.prototype.emit` interposition (interpose.ts), so the application
 * registers nothing and no listener is added to its objects.
 */
import { Server, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';

/** Node's list of an HTTP(S) server's connections (lib/_http_server.js `kConnections`). */
interface ConnectionsList {
  /** Parsers of connections with no request being received. */
  idle(): { socket: Socket }[];
}

/**
 * The connections list of an HTTP(S) server, or undefined for other servers. Node keeps it under
 * a private symbol; `server.closeIdleConnections()` would be the public way, but it destroys a
 * connection whose response has ended while its last bytes are still being written (in stream
 * mode: fetched first), which cuts that response.
 */
function httpConnections(server: Server): ConnectionsList | undefined {
  const key = Object.getOwnPropertySymbols(server).find(
    (symbol) => symbol.description === 'http.server.connections',
  );
  const list = key && (server as unknown as Record<symbol, unknown>)[key];
  return list && typeof (list as ConnectionsList).idle === 'function'
    ? (list as ConnectionsList)
    : undefined;
}

/** True for an HTTP connection with nothing in progress: no request coming, no response going. */
function idleHttpSocket(socket: Socket): boolean {
  const busy = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
  return !busy && socket.writableLength === 0;
}

/** Accepted connections of one server, held weakly: a closed socket must not stay alive here. */
class ConnectionSet {
  readonly #sockets = new Set<WeakRef<Socket>>();
  #pruneAt = 64;

  add(socket: Socket): void {
    this.#sockets.add(new WeakRef(socket));
    if (this.#sockets.size >= this.#pruneAt) {
      this.#prune();
      this.#pruneAt = Math.max(64, this.#sockets.size * 2);
    }
  }

  /** The connections still open. */
  *open(): Generator<Socket> {
    for (const ref of this.#sockets) {
      const socket = ref.deref();
      if (socket && !socket.destroyed) yield socket;
    }
  }

  #prune(): void {
    for (const ref of this.#sockets) {
      const socket = ref.deref();
      if (!socket || socket.destroyed) this.#sockets.delete(ref);
    }
  }
}

const netClose = Server.prototype.close;

/** What {@link ServerRegistry.drain} left to wait for. */
export interface DrainProgress {
  /** Servers that have not closed yet (a server closes once its last connection has). */
  readonly servers: number;
  /** Their connections still open. */
  readonly connections: number;
}

export class ServerRegistry {
  readonly #listening = new Map<Server, ConnectionSet>();
  /** Servers closed by {@link drain} that have not emitted 'close' yet. */
  readonly #draining = new Set<Server>();
  #drainingNow = false;

  /** Sees every event a `net.Server` emits (before its listeners do). */
  onEmit(server: Server, event: string | symbol, args: readonly unknown[]): void {
    switch (event) {
      case 'listening':
        if (!this.#listening.has(server)) this.#listening.set(server, new ConnectionSet());
        return;
      case 'connection':
        this.#listening.get(server)?.add(args[0] as Socket);
        return;
      case 'request':
        // While draining, every response tells its client that this connection ends with it.
        if (this.#drainingNow) (args[1] as ServerResponse).shouldKeepAlive = false;
        return;
      case 'close':
        this.#listening.delete(server);
        this.#draining.delete(server);
        return;
    }
  }

  /** True when some server listens, or a closed one still has connections. */
  get busy(): boolean {
    return this.#listening.size > 0 || this.#draining.size > 0;
  }

  /**
   * Stops accepting on every server; HTTP connections end with their response in flight. A
   * response whose head is not written yet, and every later one, says `Connection: close`; one
   * whose head already promised keep-alive closes its connection the moment it is complete (as
   * Node does for `Connection: close`: `res._last`, lib/_http_server.js `resOnFinish`), before
   * the client can send another request on it. Idle keep-alive connections are closed now and by
   * {@link sweep}.
   */
  drain(): void {
    this.#drainingNow = true;
    for (const [server, connections] of this.#listening) {
      this.#draining.add(server);
      if (!httpConnections(server)) {
        server.close();
        continue;
      }
      for (const socket of connections.open()) {
        const response = (
          socket as Socket & { _httpMessage?: (ServerResponse & { _last?: boolean }) | null }
        )._httpMessage;
        if (!response) continue;
        if (response.headersSent) response._last = true;
        else response.shouldKeepAlive = false;
      }
      // Not `server.close()`: for an HTTP server it also calls closeIdleConnections (see
      // httpConnections); stopping to accept is net.Server's part.
      netClose.call(server);
    }
    this.sweep();
  }

  /**
   * Closes the HTTP connections of draining servers that have nothing in progress (a keep-alive
   * connection between requests; Node would keep it for its keep-alive timeout).
   */
  sweep(): void {
    for (const server of this.#draining) {
      for (const { socket } of httpConnections(server)?.idle() ?? [])
        if (idleHttpSocket(socket)) socket.destroy();
    }
  }

  /** What the drain still waits for. */
  progress(): DrainProgress {
    let connections = 0;
    for (const server of this.#draining)
      for (const _ of this.#listening.get(server)?.open() ?? []) connections++;
    return { servers: this.#draining.size, connections };
  }

  /** Cuts what is left (the drain timed out). */
  destroyAll(): void {
    for (const server of this.#draining)
      for (const socket of this.#listening.get(server)?.open() ?? []) socket.destroy();
  }
}
