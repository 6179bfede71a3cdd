/**
 * Which connections speak ODB. Accepted connections: only on listed ports (or all but the
 * client-facing ones with `*`), and only once the peer opened with a hello; anything else stays
 * plain, byte for byte. Outgoing connections: to listed peers; with `*`, to peers that answered a
 * hello on a separate probe connection (the application's own connection is never used to ask,
 * since a plain peer would read the hello as its protocol's bytes).
 *
 * Learning with `*` has to reach busy keep-alive connections, which are opened once and reused
 * for as long as the load lasts. Two things make it so (docs/stream-mode.md, "Learning peers"):
 *   - a connection to a peer with no verdict yet waits for the probe, up to `probeWaitMs`
 *     (the probe starts when the application calls `connect`, alongside its own handshake);
 *   - a plain connection to a peer later learned to speak ODB is retired by the HTTP client that
 *     owns it (see plain-retirement.ts), so its next connection speaks ODB.
 */
import { isIP, Socket } from 'node:net';
import type { PeerCounters } from '../agent/protocol.js';
import type { PeerPattern, StreamConfig } from '../config/config.js';
import { flagsOf, helloFlags, helloFrame, readHello } from '../../protocol/hello.js';
import { kOdbInternal } from './symbols.js';

/** How long a probe waits for a hello answer. */
const probeTimeoutMs = 1000;
/**
 * How long a verdict is used without asking again. A stale plain verdict costs only bypass (the
 * connection stays plain, retired once the peer is learned), so it holds for a minute while a
 * probe renews it. A stale ODB verdict costs a connection if the port changed owner (a plain
 * peer cannot answer the hello, and it has read the hello as its own protocol's bytes), so it is
 * trusted for two seconds only: after that, a new connection waits for a new probe as the first
 * one did.
 */
const plainVerdictTtlMs = 60_000;
const odbVerdictTtlMs = 2000;

/** True for addresses of this host's loopback interface. */
function isLoopback(host: string): boolean {
  return (
    host === 'localhost' ||
    host === '::1' ||
    host.startsWith('127.') ||
    host.startsWith('::ffff:127.')
  );
}

export class PeerPolicy {
  readonly #config: StreamConfig;
  readonly #verdicts = new Map<string, { odb: boolean; at: number }>();
  readonly #probes = new Map<string, Promise<boolean>>();
  /**
   * This process's own listening ports: whether each speaks ODB. A loopback connection to one of
   * them needs no probe (and no probe could be answered sooner: it would wait for this very
   * thread), and the verdict changes the moment the server closes or another takes the port.
   */
  readonly #ownPorts = new Map<number, { address: string; odb: boolean }[]>();
  readonly counters: PeerCounters = {
    probes: 0,
    probeWaits: 0,
    probeWaitsExpired: 0,
    plainRetired: 0,
    helloRefused: 0,
  };
  /** Called when a counter moved (the runtime forwards them to the agent). */
  onCount: () => void = () => {};

  constructor(config: StreamConfig) {
    this.#config = config;
  }

  /** True with `ODB_CONNECT=*`: outgoing ODB is learned by probing, not configured. */
  get learns(): boolean {
    return this.#config.connect === '*';
  }

  /** May connections accepted on this local port speak ODB (if the peer says hello)? */
  acceptsOn(port: number): boolean {
    const { listen, clientFacing } = this.#config;
    if (clientFacing.includes(port)) return false;
    return listen === '*' || listen.includes(port);
  }

  /**
   * One of this process's servers is listening on `address`:`port`; `odb`: it accepts ODB there.
   */
  listening(address: string, port: number, odb: boolean): void {
    const servers = (this.#ownPorts.get(port) ?? []).filter((s) => s.address !== address);
    this.#ownPorts.set(port, [...servers, { address, odb }]);
  }

  /** This process's server on `address`:`port` closed. */
  closed(address: string, port: number): void {
    const servers = (this.#ownPorts.get(port) ?? []).filter((s) => s.address !== address);
    if (servers.length > 0) this.#ownPorts.set(port, servers);
    else this.#ownPorts.delete(port);
  }

  /** With a list of peers: is host:port on it? */
  listed(host: string, port: number): boolean {
    const { connect: peers } = this.#config;
    if (peers === '*') return false;
    return peers.some(
      (p: PeerPattern) => p.port === port && (p.host === undefined || p.host === host),
    );
  }

  /**
   * The application is connecting to host:port: with `*`, a peer given by address and not known
   * yet is probed now, so that the verdict may be in by the time the connection is up.
   */
  prepare(host: string, port: number): void {
    if (!this.learns || isIP(host) === 0) return;
    if (this.#own(host, port) !== undefined) return;
    if (this.#fresh(`${host}:${port}`) === undefined) this.#probe(host, port);
  }

  /**
   * With `*`: should a connection to host:port (the address it reached) open with a hello? The
   * verdict when one is known (a stale one holds while a probe renews it); otherwise a promise of
   * the probe's verdict that settles within the probe wait — false if the probe has not answered
   * by then (the connection stays plain, and is retired later if it can be).
   */
  learned(host: string, port: number): boolean | Promise<boolean> {
    const own = this.#own(host, port);
    if (own !== undefined) return own;
    const key = `${host}:${port}`;
    const fresh = this.#fresh(key);
    if (fresh !== undefined) return fresh;
    const probe = this.#probe(host, port);
    const stale = this.#verdicts.get(key);
    if (stale && !stale.odb) return false;
    const waitMs = this.#config.probeWaitMs;
    if (waitMs <= 0) return false;
    this.#count('probeWaits');
    return new Promise<boolean>((resolve) => {
      // Unreferenced: waiting for a verdict must not keep a process alive by itself (the
      // application's socket does, as long as the application keeps it).
      const timer = setTimeout(() => {
        this.#count('probeWaitsExpired');
        resolve(false);
      }, waitMs);
      timer.unref();
      void probe.then((odb) => {
        clearTimeout(timer);
        resolve(odb);
      });
    });
  }

  /** Is host:port known to speak ODB now? (A plain connection to it may then be retired.) */
  knownOdb(host: string, port: number): boolean {
    return this.#own(host, port) ?? this.#verdicts.get(`${host}:${port}`)?.odb === true;
  }

  /**
   * The verdict for a loopback address and port that one of this process's servers listens on,
   * if one does: bound to that very address, or to the wildcard of its family (another process
   * may hold the same port on another loopback address).
   */
  #own(host: string, port: number): boolean | undefined {
    if (!isLoopback(host)) return undefined;
    const ipv4 = host.startsWith('127.') || host.startsWith('::ffff:127.');
    const plain = host.startsWith('::ffff:') ? host.slice(7) : host;
    const server = this.#ownPorts
      .get(port)
      ?.find((s) => s.address === plain || s.address === '::' || (s.address === '0.0.0.0' && ipv4));
    return server?.odb;
  }

  /**
   * A learned peer did not answer an application connection's hello (its port changed owner, say):
   * forget the verdict, so the next connection asks again instead of failing for a minute.
   */
  refused(host: string, port: number): void {
    if (!this.learns) return;
    this.#verdicts.delete(`${host}:${port}`);
    this.#count('helloRefused');
  }

  /** Counts a plain connection retired after its current response (see plain-retirement.ts). */
  countRetired(): void {
    this.#count('plainRetired');
  }

  #count(counter: keyof PeerCounters): void {
    this.counters[counter]++;
    this.onCount();
  }

  /** A verdict younger than its time to live, if any. */
  #fresh(key: string): boolean | undefined {
    const verdict = this.#verdicts.get(key);
    if (!verdict) return undefined;
    const ttl = verdict.odb ? odbVerdictTtlMs : plainVerdictTtlMs;
    return Date.now() - verdict.at < ttl ? verdict.odb : undefined;
  }

  /** The probe of host:port in progress, or a new one. */
  #probe(host: string, port: number): Promise<boolean> {
    const key = `${host}:${port}`;
    const running = this.#probes.get(key);
    if (running) return running;
    this.#count('probes');
    const probe = new Promise<boolean>((resolve) => {
      const socket = new Socket();
      (socket as Socket & { [kOdbInternal]?: boolean })[kOdbInternal] = true;
      socket.connect({ host, port });
      // A probe never keeps a process alive that would otherwise exit.
      socket.unref();
      let received = Buffer.alloc(0);
      let settled = false;
      const done = (odb: boolean): void => {
        if (settled) return;
        settled = true;
        this.#probes.delete(key);
        this.#verdicts.set(key, { odb, at: Date.now() });
        socket.destroy();
        resolve(odb);
      };
      socket.setTimeout(probeTimeoutMs, () => done(false));
      socket.on('error', () => done(false));
      socket.on('close', () => done(false));
      socket.on('connect', () => socket.write(helloFrame(helloFlags.probe)));
      socket.on('data', (data: Buffer) => {
        received = Buffer.concat([received, data]);
        const hello = readHello(received);
        // Only an acceptor's answer counts: an echo server sends the probe's own hello back.
        if (hello !== 'incomplete')
          done(hello !== 'not-hello' && (flagsOf(received) & helloFlags.answer) !== 0);
      });
    });
    this.#probes.set(key, probe);
    return probe;
  }
}
