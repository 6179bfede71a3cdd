/**
 * Lending a Node socket to the kernel transfer engine (src/native/transfer.ts) and taking it
 * back: which sockets can be lent (plain TCP, with a descriptor of their own), and when one is
 * ready (everything JavaScript wrote to it has reached the kernel, so the engine's bytes follow
 * JavaScript's in order). Nothing here reads or writes payload bytes.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** The libuv handle's parts this module relies on (Node's TCPWrap: `fd`, `writeQueueSize`). */
interface TcpHandle {
  readonly fd?: number;
  readonly writeQueueSize?: number;
}

/** Sockets lent to the engine, with the bytes the engine is to send on them. */
const lent = new WeakMap<Socket, number>();

/**
 * Marks `socket` as sending `bytes` outside Node (the engine's) until the returned function is
 * called: the send watchdog (send-rate.ts) then judges its peer as if Node queued them.
 */
export function markLent(socket: Socket, bytes: number): () => void {
  lent.set(socket, bytes);
  return () => lent.delete(socket);
}

/** Bytes the engine is sending on `socket` (0 when it is not lent). */
export function lentBytes(socket: Socket): number {
  return lent.get(socket) ?? 0;
}

/** Bytes the engine moved on a socket, which Node's `bytesRead`/`bytesWritten` never see. */
const moved = new WeakMap<Socket, { read: number; written: number }>();

/** Records bytes a kernel transfer read from or wrote to `socket`. */
export function countKernelBytes(
  socket: Socket,
  direction: 'read' | 'written',
  bytes: number,
): void {
  const counts = moved.get(socket) ?? { read: 0, written: 0 };
  counts[direction] += bytes;
  moved.set(socket, counts);
}

/** `socket.bytesRead` and `bytesWritten` plus what the engine moved on it. */
export function socketBytes(socket: Socket): { read: number; written: number } {
  const kernel = moved.get(socket);
  return {
    read: socket.bytesRead + (kernel?.read ?? 0),
    written: socket.bytesWritten + (kernel?.written ?? 0),
  };
}

const handleOf = (socket: Socket): TcpHandle | undefined =>
  (socket as unknown as { _handle?: TcpHandle | null })._handle ?? undefined;

/**
 * Why `socket` cannot be lent, or its descriptor. TLS sockets cannot (the bytes must be
 * encrypted in user space; kernel TLS would need the session's keys), nor a socket that is not
 * connected, is closing, or has no descriptor of its own (a pipe, a JavaScript stream).
 */
export function lendableFd(socket: Socket | null | undefined): number | 'tls' | 'not-lendable' {
  if (!socket || socket.destroyed || !socket.writable) return 'not-lendable';
  if (socket instanceof TLSSocket || (socket as { encrypted?: boolean }).encrypted) return 'tls';
  const fd = handleOf(socket)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : 'not-lendable';
}

/**
 * What must be empty for a socket to count as flushed: `all` — Node's write buffer and libuv's
 * queue; `handle` — libuv's queue only, for a caller inside the socket's own `_write`, where
 * Node's buffer holds the very chunk being written (and the ones behind it).
 */
export type FlushScope = 'all' | 'handle';

/** True when nothing JavaScript wrote to `socket` still waits in Node or libuv. */
export function isFlushed(socket: Socket, scope: FlushScope = 'all'): boolean {
  const handleEmpty = (handleOf(socket)?.writeQueueSize ?? 0) === 0;
  if (scope === 'handle') return handleEmpty;
  return socket.writableLength === 0 && !socket.writableCorked && handleEmpty;
}

/**
 * Resolves true once every byte written to `socket` so far has been handed to the kernel; false
 * if the socket closes first or it takes longer than `timeoutMs` (a peer that reads nothing).
 */
export function whenFlushed(
  socket: Socket,
  timeoutMs: number,
  scope: FlushScope = 'all',
): Promise<boolean> {
  const isFlushedNow = (): boolean => isFlushed(socket, scope);
  // First: a destroyed socket has no handle, whose queue would look empty.
  if (socket.destroyed || !handleOf(socket)) return Promise.resolve(false);
  if (isFlushedNow()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const check = (): void => {
      if (socket.destroyed || !handleOf(socket)) finish(false);
      else if (isFlushedNow()) finish(true);
    };
    // 'drain' comes only after a write that filled Node's buffer: otherwise the queue is looked
    // at every millisecond (a response head is usually in the kernel at once, never polled).
    const poll = setInterval(check, 1);
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (flushed: boolean): void => {
      clearInterval(poll);
      clearTimeout(timer);
      socket.off('drain', check);
      socket.off('close', check);
      resolve(flushed);
    };
    socket.on('drain', check);
    socket.on('close', check);
  });
}
