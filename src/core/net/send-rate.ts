/**
 * The minimum send rate of a listener (like nginx's `send_timeout`, with a rate): a connection
 * with response bytes queued for its peer must keep taking them, or it is cut. A reader that has
 * stopped, or trickles, would otherwise hold its response's resources (a store connection, a
 * store fetch, buffers) for as long as it likes.
 *
 * Each socket has a deadline while bytes are queued for it: when queueing starts, the deadline is
 * `timeoutMs` ahead; every byte the peer takes moves it `1 / minBytesPerSecond` seconds later, but
 * never more than `timeoutMs` ahead of now. A peer taking at least the minimum rate is never cut,
 * however large the body; one that takes nothing is cut `timeoutMs` after it stopped; one that
 * trickles at a fraction f of the rate is cut after `timeoutMs / (1 - f)`. With a rate of 0 only
 * progress counts (nginx's rule). Credit capped at `timeoutMs` keeps a fast start from paying for
 * a long stall; earning by bytes rather than over fixed windows tolerates bursts.
 *
 * What a peer takes is what it acknowledges, read from the kernel (TCP_INFO, see
 * socket-progress.ts): it moves in window updates of about a segment (1448 bytes on Ethernet, up
 * to 64 KiB on loopback), at the pace the peer reads. Without the native addon the watchdog falls
 * back to what Node sees, whole write requests reaching the kernel's send buffer, which drains in
 * bursts of up to a MiB or more: a peer slower than a burst per `timeoutMs` then looks idle, as
 * it does to nginx.
 *
 * Sockets are sampled, not hooked: one timer for all of them reads `writableLength` (bytes Node
 * still queues; plus those of a kernel transfer, socket-handoff.ts) and what the peer took. A socket with nothing queued is never blamed: waiting
 * for an upstream, or idle between requests, is not a slow reader (idle connections are another
 * limit's business).
 */
import { Socket } from 'node:net';
import { ackedBytes } from './socket-progress.js';
import { lentBytes } from './socket-handoff.js';

/** Limits of a {@link SendWatchdog}. */
export interface SendRateLimits {
  /** How far ahead a queued socket's deadline may reach, in ms; 0 turns the watchdog off. */
  readonly timeoutMs: number;
  /** Bytes per second a peer must take while bytes are queued for it; 0: any progress will do. */
  readonly minBytesPerSecond: number;
}

/** Options of a {@link SendWatchdog}. */
export interface SendWatchdogOptions extends SendRateLimits {
  /** How often sockets are sampled, in ms. Default: a quarter of the timeout, at most 1 s. */
  readonly checkIntervalMs?: number;
  /** Called with each socket about to be cut (to log it). */
  readonly onCut?: (socket: Socket, cut: SendTimeout) => void;
}

/** What a cut socket had done. */
export interface SendTimeout {
  /** Bytes queued for the peer when it was cut. */
  readonly queuedBytes: number;
  /** How long bytes had been queued for it without a break, in ms. */
  readonly queuedForMs: number;
  /** Bytes it took in that time. */
  readonly takenBytes: number;
}

/** Counters of a watchdog; exposed as metrics. */
export interface SendWatchdogStats {
  /** Connections cut for taking their bytes too slowly. */
  cut: number;
}

/** Default `--send-timeout`: nginx's `send_timeout`. */
export const defaultSendTimeoutMs = 60_000;
/** Default `--send-min-rate`: about mod_reqtimeout's default MinRate (500 bytes/s) for bodies. */
export const defaultSendMinBytesPerSecond = 512;

/**
 * A queued socket's deadline after a sample in which its peer took `gained` bytes: each byte buys
 * `1 / minBytesPerSecond` seconds (without a rate, any progress restarts the timeout), never
 * more than `timeoutMs` ahead of `now`.
 */
export function earnedDeadline(
  deadline: number,
  now: number,
  gained: number,
  limits: SendRateLimits,
): number {
  if (gained <= 0) return deadline;
  const earned =
    limits.minBytesPerSecond > 0 ? deadline + (gained * 1000) / limits.minBytesPerSecond : Infinity;
  return Math.min(now + limits.timeoutMs, earned);
}

interface Watched {
  /** At the last sample: bytes the peer acknowledged (or, without the addon, the kernel took). */
  taken: number;
  /** Undefined while nothing is queued. */
  deadline: number | undefined;
  queuedSince: number;
  takenAtStart: number;
}

/** Cuts sockets whose peers stop taking the bytes queued for them (see the module comment). */
export class SendWatchdog {
  readonly stats: SendWatchdogStats = { cut: 0 };
  readonly #limits: SendRateLimits;
  readonly #intervalMs: number;
  readonly #onCut: SendWatchdogOptions['onCut'];
  readonly #sockets = new Map<Socket, Watched>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SendWatchdogOptions) {
    this.#limits = { timeoutMs: options.timeoutMs, minBytesPerSecond: options.minBytesPerSecond };
    this.#intervalMs = Math.max(
      1,
      options.checkIntervalMs ?? Math.min(1000, Math.ceil(options.timeoutMs / 4)),
    );
    this.#onCut = options.onCut;
  }

  /** True unless the timeout is 0. */
  get enabled(): boolean {
    return this.#limits.timeoutMs > 0;
  }

  /** Watches `socket` until it closes. */
  watch(socket: Socket): void {
    if (!this.enabled || socket.destroyed) return;
    this.#sockets.set(socket, { taken: 0, deadline: undefined, queuedSince: 0, takenAtStart: 0 });
    socket.once('close', () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.#stop();
    });
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#check(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  /** Stops watching every socket (they stay open). */
  close(): void {
    this.#sockets.clear();
    this.#stop();
  }

  #stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    const now = Date.now();
    for (const [socket, watched] of this.#sockets) {
      if (socket.destroyed) continue; // its 'close' is coming
      const queued = socket.writableLength + lentBytes(socket);
      const taken = ackedBytes(socket) ?? socket.bytesWritten - queued;
      const gained = taken - watched.taken;
      watched.taken = taken;
      if (queued === 0) {
        watched.deadline = undefined;
        continue;
      }
      if (watched.deadline === undefined) {
        watched.deadline = now + this.#limits.timeoutMs;
        watched.queuedSince = now;
        watched.takenAtStart = taken;
        continue;
      }
      watched.deadline = earnedDeadline(watched.deadline, now, gained, this.#limits);
      if (now < watched.deadline) continue;
      this.stats.cut++;
      this.#sockets.delete(socket);
      this.#onCut?.(socket, {
        queuedBytes: queued,
        queuedForMs: now - watched.queuedSince,
        takenBytes: taken - watched.takenAtStart,
      });
      // A reset, not a close: a close would leave the unsent bytes in the kernel, which keeps
      // offering them to a peer that does not read (like nginx's reset_timedout_connection).
      // Only TCP sockets can be reset: a TLS socket through the TCP socket it wraps; anything
      // else (a pipe) is destroyed.
      try {
        socket.resetAndDestroy();
      } catch {
        const tcp = wrappedTcpSocket(socket);
        try {
          tcp?.resetAndDestroy();
        } catch {
          // Not TCP either: the destroy below is all there is.
        }
        socket.destroy();
      }
    }
    if (this.#sockets.size === 0) this.#stop();
  }
}

/**
 * The TCP socket a TLS socket wraps (Node keeps it as `_parent` of a server's TLS sockets), or
 * undefined for any other socket.
 */
function wrappedTcpSocket(socket: Socket): Socket | undefined {
  const parent = (socket as Socket & { _parent?: unknown })._parent;
  return parent instanceof Socket && parent !== socket ? parent : undefined;
}
