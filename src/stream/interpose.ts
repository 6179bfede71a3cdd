/**
 * Where stream mode enters Node's `net` module, process-wide:
 *   - `net.Server.prototype.emit('connection')`: sockets accepted on ODB ports get an
 *     OdbConnection (sniffing for a hello) and are kept away from the C++ HTTP parser's direct
 *     `consume` (their bytes must pass through the frame decoder); every server event also goes
 *     to the ServerRegistry, which a graceful exit drains;
 *   - `net.Socket.prototype.connect`: once connected to an ODB peer, the socket says hello (with
 *     `ODB_CONNECT=*`, after waiting briefly for the probe of a peer not known yet);
 *   - `net.Socket.prototype._writeGeneric` (Node 20: every socket write and writev ends there):
 *     ODB sockets frame; plain sockets fetch lazy buffers first instead of letting the kernel fault,
 *     and a plain HTTP client socket to a peer since learned to speak ODB is retired.
 * TLS servers are left alone (ODB frames would have to sit under TLS).
 */
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { OdbConnection, writePlain } from './connection.js';
import type { PeerPolicy } from './peers.js';
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
type WriteGeneric = (
  this: net.Socket,
  writev: boolean,
  data: unknown,
  encoding: string,
  cb: (err?: Error | null) => void,
) => void;

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
  policy.onCount = () => runtime.reportPeerCounters(policy.counters);

  net.Server.prototype.emit = function odbEmit(
    this: net.Server,
    event: string | symbol,
    ...args: unknown[]
  ): boolean {
    servers.onEmit(this, event, args);
    if (event === 'connection' && !(this instanceof tls.Server)) {
      const socket = args[0] as Marked;
      const port = (this.address() as AddressInfo | null)?.port;
      if (port !== undefined && policy.acceptsOn(port) && socket._handle) {
        // Node's HTTP server reads a fresh TCP handle directly in C++; this one must go through
        // the frame decoder, so it is marked as already consumed (Node then uses 'data' events).
        socket._handle._consumed = true;
        OdbConnection.accept(socket, runtime, writeGeneric);
      }
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as typeof net.Server.prototype.emit;

  proto.connect = function odbConnect(this: Marked, ...args: unknown[]): net.Socket {
    const result = connect.apply(this, args);
    if (!this[kOdbInternal] && !this[kOdbChecked]) {
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
