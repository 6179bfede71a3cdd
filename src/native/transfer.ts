/**
 * The typed face of the transfer engine (native/transfer.cc): the kernel moves payload bytes
 * between descriptors — `sendfile(2)` from a file to a socket, `splice(2)` from a socket through
 * a pipe to a socket — first on the calling thread, as far as the sockets take them at once
 * (at most 256 KiB), and the rest on a thread of the addon's own; JavaScript hears only how
 * each transfer ended. Loading never throws: without the addon (or with ODB_NATIVE=off) the reason is
 * returned, and callers take their JavaScript path.
 */
import { constants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { loadLazyBinding } from './binding.js';

/** The addon's transfer functions. */
interface TransferBinding {
  transferInit(onEnd: (id: number, error: number, side: number, written: number) => void): boolean;
  /**
   * kind 0: sendfile from `src` at `offset`; 1: splice from `src` (offset ignored). Returns the
   * id its end is reported under, or `[errno, side, written]` when it ended in its first step
   * (on the calling thread).
   */
  transferStart(
    kind: 0 | 1,
    src: number,
    dst: number,
    offset: number,
    length: number,
    idleMs: number,
    destinationIdleMs: number,
  ): number | [number, number, number];
  transferCancel(id: number): void;
  transferActive(): number;
}

/** How a transfer ended: `errno` 0 when every byte was written to the destination. */
export interface TransferEnd {
  readonly errno: number;
  /** The errno's name (`EPIPE`, `ETIMEDOUT`, `ECANCELED`, …); 'OK' for 0. */
  readonly reason: string;
  /**
   * Which end failed (for ETIMEDOUT: which end it was waiting on); undefined when it ended well
   * or was cancelled. ESTALE and ENODATA at the source: the file changed under a sendfile.
   */
  readonly side: 'source' | 'destination' | undefined;
  /** Bytes written to the destination (the socket's send queue, not yet acknowledged). */
  readonly written: number;
}

/** A running transfer. */
export interface Transfer {
  /** Settles once the engine let go of both descriptors: they may be closed or reused then. */
  readonly ended: Promise<TransferEnd>;
  /** Ends it early (ECANCELED); no effect once it ended. */
  cancel(): void;
}

/** Starts kernel transfers. */
export interface TransferEngine {
  /** `length` bytes of the file `fileFd` from `offset` into the socket `socketFd`. */
  sendfile(
    fileFd: number,
    socketFd: number,
    offset: number,
    length: number,
    idleMs: number,
  ): Transfer;
  /**
   * Exactly `length` bytes from the socket `srcFd` into the socket `dstFd`, none beyond.
   * `destinationIdleMs`: how long the destination may take no bytes (default `idleMs`; 0: as
   * long as it likes, as Node lets a slow reader take its time).
   */
  splice(
    srcFd: number,
    dstFd: number,
    length: number,
    idleMs: number,
    destinationIdleMs?: number,
  ): Transfer;
  /** Transfers started and not yet ended. */
  active(): number;
}

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

let loaded: { engine: TransferEngine } | { reason: string } | undefined;

/**
 * The process's engine, or why there is none. Main thread only: the engine reports to the
 * thread that started it. `enabled` false: switched off (ODB_NATIVE=off).
 */
export function transferEngine(
  enabled = process.env.ODB_NATIVE !== 'off',
): { engine: TransferEngine } | { reason: string } {
  if (!enabled) return { reason: 'switched off (ODB_NATIVE=off)' };
  if (loaded) return loaded;
  loaded = load();
  return loaded;
}

function load(): { engine: TransferEngine } | { reason: string } {
  if (!isMainThread) return { reason: 'kernel transfers run from the main thread only' };
  const addon = loadLazyBinding(true);
  if ('reason' in addon) return { reason: addon.reason };
  const binding = addon.binding as unknown as Partial<TransferBinding>;
  if (typeof binding.transferStart !== 'function') {
    return { reason: 'the addon was built without the transfer engine (rebuild: npm ci)' };
  }
  const native = binding as TransferBinding;
  const waiting = new Map<number, (end: TransferEnd) => void>();
  const end = (errno: number, side: number, written: number): TransferEnd => ({
    errno,
    reason: errno === 0 ? 'OK' : (errnoNames.get(errno) ?? `errno ${errno}`),
    side: side === 1 ? 'source' : side === 2 ? 'destination' : undefined,
    written,
  });
  try {
    native.transferInit((id, errno, side, written) => {
      const settle = waiting.get(id);
      waiting.delete(id);
      settle?.(end(errno, side, written));
    });
  } catch (err) {
    return { reason: (err as Error).message };
  }
  const start = (...args: Parameters<TransferBinding['transferStart']>): Transfer => {
    // Throws (the engine started nothing) when a pipe cannot be had: the caller falls back.
    const started = native.transferStart(...args);
    // Ended already, on this thread: nothing left to cancel.
    if (typeof started !== 'number') {
      return { ended: Promise.resolve(end(...started)), cancel: () => {} };
    }
    const ended = new Promise<TransferEnd>((resolve) => waiting.set(started, resolve));
    return { ended, cancel: () => native.transferCancel(started) };
  };
  return {
    engine: {
      sendfile: (fileFd, socketFd, offset, length, idleMs) =>
        start(0, fileFd, socketFd, offset, length, idleMs, idleMs),
      splice: (srcFd, dstFd, length, idleMs, destinationIdleMs = idleMs) =>
        start(1, srcFd, dstFd, 0, length, idleMs, destinationIdleMs),
      active: () => native.transferActive(),
    },
  };
}
