/**
 * Where stream mode enters Node's `net` module, process-wide:
 *   - `net.Server.prototype.emit('connection')`: sockets accepted on ODB ports get an
 *     OdbConnection (sniffing for a hello) and are kept away from the C++ HTTP parser's direct
 *     `consume` (their bytes must pass through the frame decoder); every server event also goes
 *     to the ServerRegistry, which a graceful exit drains;
 *   - `net.Socket.prototype.connect`: once connected to an ODB peer, the socket says hello (with
 *     `ODB_CONNECT=*`, after waiting briefly for the probe of a peer not known yet);
 *   - `net.Socket.prototype._writeGeneric` (Node 20: every socket write and writev ends there):
 *     ODB sockets frame; plain sockets get lazy buffers spliced by the kernel or fetched first,
 *     never faulted on (plain-write.ts), and a plain HTTP client socket to a peer since learned
 *     to speak ODB is retired.
 *   - `tls.TLSSocket.prototype._wrapHandle`: TLS over a socket that already speaks ODB reads and
 *     writes it through its JavaScript stream (so through the frames), not its native handle.
 * TLS sockets and servers, and HTTP/2 servers, are left alone: TLS is end to end, and HTTP/2
 * reads its socket natively. An outgoing connection says hello only before the application's
 * first write through JavaScript (connection.ts, 'unsaid'), so one whose handle native code takes
 * over (HTTP/2, a TLS wrap) stays plain.
 */
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { OdbConnection } from './connection.js';
import type { PeerPolicy } from './peers.js';
import { writePlain, type WriteGeneric } from './plain-write.js';
import { retireAfterResponse } from './plain-retirement.js';
import type { StreamRuntime } from './runtime.js';
import type { ServerRegistry } from './servers.js';
import { kOdbChecked, kOdbConnection, kOdbInternal, kOdbPlainPeer } from './symbols.js';

type Marked = net.Socket & {
  [kOdbConnection]?: OdbConnection;
  [kOdbInternal]?: boolean;
  [kOdbChecked]?: boolean;
  [kOdbPlainPeer]?: { host: string; port: number };
  _handle?: { _consumed?: boolean } | null;
};

type WrapHandle = (wrap: Marked | null, handle: unknown, pendingWrites: boolean) => unknown;
type JSStreamSocketClass = new (stream: Duplex) => net.Socket & { _handle: unknown };

let jsStreamSocket: JSStreamSocketClass | undefined;
/**
 * Node's internal JSStreamSocket, which presents a JavaScript stream to native code as a handle
 * (what TLS uses for a stream that has no native handle). It is not exported: a TLS socket over a
 * bare Duplex makes one, and its class is taken from there, once.
 */
function jsStreamSocketClass(): JSStreamSocketClass {
  if (!jsStreamSocket) {
    const sample = new tls.TLSSocket(
      new Duplex({ read() {}, write: (_chunk, _encoding, cb: () => void) => cb() }),
    ) as unknown as { _handle: { _parentWrap: { constructor: JSStreamSocketClass } } };
    jsStreamSocket = sample._handle._parentWrap.constructor;
    (sample as unknown as net.Socket).destroy();
  }
  return jsStreamSocket;
}

/** Host and port a `connect(...)` call aims at, or undefined for IPC paths. */
function connectTarget(args: unknown[]): { host: string; port: number } | undefined {
  let options: unknown = args[0];
  if (Array.isArray(options)) options = options[0]; // net's internal normalised arguments
  if (typeof options === 'number' || (typeof options === 'string' && /^\d+$/.test(options))) {
    return { host: typeof args[1] === 'string' ? args[1] : 'localhost', port: Number(options) };
  }
  if (options && typeof options === 'object') {
    const o = options as { port?: number | string | null; host?: string; path?: string | null };
    if (typeof o.path === 'string' || o.port === undefined || o.port === null) return undefined;
    return { host: o.host ?? 'localhost', port: Number(o.port) };
  }
  return undefined;
}

export function installInterposition(
  runtime: StreamRuntime,
  policy: PeerPolicy,
  servers: ServerRegistry,
): void {
  const proto = net.Socket.prototype as unknown as {
    _writeGeneric: WriteGeneric;
    connect: (...args: unknown[]) => net.Socket;
  };
  const writeGeneric = proto._writeGeneric;
  const connect = proto.connect;
  const emit = net.Server.prototype.emit;
  const tlsProto = tls.TLSSocket.prototype as unknown as { _wrapHandle: WrapHandle };
  const wrapHandle = tlsProto._wrapHandle;
  // HTTP/2 servers read their sockets natively: a hello would reach nghttp2, never the frames.
  const Http2Server = http2.createServer().constructor;
  policy.onCount = () => runtime.reportPeerCounters(policy.counters);
  // The address each listening server took (it is gone by the time the server emits 'close').
  const listeningPorts = new WeakMap<net.Server, AddressInfo>();

  tlsProto._wrapHandle = function odbWrapHandle(wrap, handle, pendingWrites): unknown {
    const connection = wrap?.[kOdbConnection];
    if (wrap && connection && !connection.yieldToNative()) {
      const stream = new (jsStreamSocketClass())(wrap as unknown as Duplex);
      // It repeats the socket's errors, which TLS already hears on the socket itself.
      stream.on('error', () => {});
      // Natively, TLS alone sees the TCP stream end and ends it in turn (after its close_notify);
      // the socket's own JavaScript side must not end it first. Set once the TLS socket has read
      // the setting it inherits, as it would have without ODB.
      queueMicrotask(() => (wrap.allowHalfOpen = true));
      return Reflect.apply(wrapHandle, this, [stream, stream._handle, pendingWrites]);
    }
    return Reflect.apply(wrapHandle, this, [wrap, handle, pendingWrites]);
  };

  net.Server.prototype.emit = function odbEmit(
    this: net.Server,
    event: string | symbol,
    ...args: unknown[]
  ): boolean {
    servers.onEmit(this, event, args);
    const speaksOdb = !(this instanceof tls.Server) && !(this instanceof Http2Server);
    if (event === 'listening') {
      const bound = this.address() as AddressInfo | null;
      if (bound && typeof bound === 'object') {
        listeningPorts.set(this, bound);
        policy.listening(bound.address, bound.port, speaksOdb && policy.acceptsOn(bound.port));
      }
    } else if (event === 'close') {
      const bound = listeningPorts.get(this);
      if (bound) policy.closed(bound.address, bound.port);
    }
    if (event === 'connection' && speaksOdb) {
      const socket = args[0] as Marked;
      const port = (this.address() as AddressInfo | null)?.port;
      if (port !== undefined && policy.acceptsOn(port) && socket._handle) {
        // Node's HTTP server reads a fresh TCP handle directly in C++; this one must go through
        // the frame decoder, so it is marked as already consumed (Node then uses 'data' events).
        socket._handle._consumed = true;
        // The application gets the connection once its first bytes show it is not a probe.
        OdbConnection.accept(socket, runtime, writeGeneric, () =>
          Reflect.apply(emit, this, [event, ...args]),
        );
        return this.listenerCount('connection') > 0;
      }
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as typeof net.Server.prototype.emit;

  proto.connect = function odbConnect(this: Marked, ...args: unknown[]): net.Socket {
    const result = connect.apply(this, args);
    // A TLS socket's bytes are TLS records end to end: never ODB's (its TCP is its own handle).
    if (!this[kOdbInternal] && !this[kOdbChecked] && !(this instanceof tls.TLSSocket)) {
      this[kOdbChecked] = true;
      const target = connectTarget(args);
      if (target) {
        policy.prepare(target.host, target.port);
        this.prependOnceListener('connect', () => {
          if (this[kOdbConnection]) return;
          if (!policy.learns) {
            const odb =
              policy.listed(target.host, target.port) ||
              (this.remoteAddress !== undefined && policy.listed(this.remoteAddress, target.port));
            if (odb) OdbConnection.connect(this, runtime, writeGeneric);
            return;
          }
          // Learned peers are known by the address actually reached.
          const peer = { host: this.remoteAddress ?? target.host, port: target.port };
          const refused = (): void => policy.refused(peer.host, peer.port);
          const verdict = policy.learned(peer.host, peer.port);
          if (verdict === true) {
            OdbConnection.connect(this, runtime, writeGeneric, refused);
            return;
          }
          // Plain, for now: retired if the peer turns out to speak ODB after all.
          if (verdict === false) this[kOdbPlainPeer] = peer;
          else {
            OdbConnection.decide(this, runtime, writeGeneric, verdict, refused);
            void verdict.then((odb) => {
              if (!odb) this[kOdbPlainPeer] = peer;
            });
          }
        });
      }
    }
    return result;
  };

  proto._writeGeneric = function odbWriteGeneric(this: Marked, writev, data, encoding, cb): void {
    // While connecting, Node calls this again once connected: decide then.
    if (this.connecting) return writeGeneric.call(this, writev, data, encoding, cb);
    const connection = this[kOdbConnection];
    const plainPeer = this[kOdbPlainPeer];
    if (plainPeer && policy.knownOdb(plainPeer.host, plainPeer.port)) {
      this[kOdbPlainPeer] = undefined;
      if (retireAfterResponse(this)) policy.countRetired();
    }
    if (connection) return connection.write(writev, data, encoding, cb);
    writePlain(runtime, this, writeGeneric, writev, data, encoding, cb);
  };
}
