/**
 * Which connections speak ODB. Accepted connections: only on listed ports (or all but the
 * client-facing ones with `*`), and only once the peer opened with a hello; anything else stays
 * plain, byte for byte. Outgoing connections: to listed peers; with `*`, to peers that answered a
 * hello on a separate probe connection (the application's own connection is never used to ask).
 */
import { Socket } from 'node:net';
import type { PeerPattern, StreamConfig } from './config.js';
import { helloFrame, readHello } from './hello.js';
import { kOdbInternal } from './symbols.js';

/** How long a probe waits for a hello answer, and how long its verdict is remembered. */
const probeTimeoutMs = 1000;
const verdictTtlMs = 60_000;

export class PeerPolicy {
  readonly #config: StreamConfig;
  readonly #verdicts = new Map<string, { odb: boolean; at: number }>();
  readonly #probing = new Set<string>();

  constructor(config: StreamConfig) {
    this.#config = config;
  }

  /** May connections accepted on this local port speak ODB (if the peer says hello)? */
  acceptsOn(port: number): boolean {
    const { listen, clientFacing } = this.#config;
    if (clientFacing.includes(port)) return false;
    return listen === '*' || listen.includes(port);
  }

  /** Should a connection to host:port open with a hello? */
  connectsTo(host: string, port: number): boolean {
    const { connect: peers } = this.#config;
    if (peers !== '*')
      return peers.some(
        (p: PeerPattern) => p.port === port && (p.host === undefined || p.host === host),
      );
    const key = `${host}:${port}`;
    const verdict = this.#verdicts.get(key);
    if (verdict && Date.now() - verdict.at < verdictTtlMs) return verdict.odb;
    this.#probe(host, port, key);
    // A stale verdict holds while it is renewed; with none, the connection stays plain until a
    // probe says otherwise.
    return verdict?.odb ?? false;
  }

  #probe(host: string, port: number, key: string): void {
    if (this.#probing.has(key)) return;
    this.#probing.add(key);
    const socket = new Socket();
    (socket as Socket & { [kOdbInternal]?: boolean })[kOdbInternal] = true;
    socket.connect({ host, port });
    let received = Buffer.alloc(0);
    const done = (odb: boolean): void => {
      if (!this.#probing.delete(key)) return;
      this.#verdicts.set(key, { odb, at: Date.now() });
      socket.destroy();
    };
    socket.setTimeout(probeTimeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.on('connect', () => socket.write(helloFrame()));
    socket.on('data', (data: Buffer) => {
      received = Buffer.concat([received, data]);
      const hello = readHello(received);
      if (hello !== 'incomplete') done(hello !== 'not-hello');
    });
  }
}
