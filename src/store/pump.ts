/**
 * The copy loop of the store server: a payload source's range into a socket, with backpressure and
 * writes bounded in size, so a slow or vanished reader costs neither memory nor a stuck read.
 */
import type { Writable } from 'node:stream';
import type { PayloadSource, ReadOptions } from './payloads/source.js';

/**
 * Largest single write, unless the source yields views and the caller allows more
 * ({@link PumpOptions.viewWriteBytes}). A source may yield a chunk of many megabytes (a view of a
 * captured body); written in pieces, the destination's progress shows while it drains (a send
 * watchdog samples it), and a destroyed destination stops the copy within one piece. Views: no
 * copy.
 */
export const maxWriteBytes = 64 * 1024;

/**
 * Largest single write of a view (see {@link PumpOptions.viewWriteBytes}). Each write costs the
 * stream machinery a few µs whatever its size, and a memory payload of 1 MiB went out as 16 of
 * them: its store's thread spent about 300 µs less per MiB in one write.
 */
export const maxViewWriteBytes = 1024 * 1024;

/** How {@link pumpSource} reads and reports. */
export interface PumpOptions extends ReadOptions {
  /**
   * Runs when a chunk of the source has left for the kernel (the write callback of its last
   * piece: every piece shares the chunk's memory), with the chunk's size. Not called for chunks
   * a destroyed destination dropped.
   */
  readonly onFlushed?: (bytes: number) => void;
  /**
   * Largest single write when the source yields views (default {@link maxWriteBytes}): larger
   * pieces are cheaper, but the destination's progress then shows to a sampler of
   * `writableLength` only piece by piece, so pass more only when progress is read from the
   * kernel (acknowledged bytes).
   */
  readonly viewWriteBytes?: number;
}

/**
 * Writes `[start, end)` of `source` into `destination` with backpressure. Resolves true once every
 * byte was handed to it (the destination is not ended), false if it closed first; rejects when
 * the source fails. `onChunk` runs after each write with the position reached and its bytes.
 */
export async function pumpSource(
  source: PayloadSource,
  start: number,
  end: number | undefined,
  destination: Writable,
  onChunk?: (position: number, bytes: number) => void,
  options: PumpOptions = {},
): Promise<boolean> {
  const { onFlushed, allocate } = options;
  const pieceBytes = source.yieldsViews
    ? Math.max(maxWriteBytes, options.viewWriteBytes ?? maxWriteBytes)
    : maxWriteBytes;
  let position = start;
  for await (const chunk of source.read(start, end, allocate && { allocate })) {
    for (let at = 0; at < chunk.length; at += pieceBytes) {
      if (destination.destroyed) return false;
      const piece =
        at === 0 && chunk.length <= pieceBytes ? chunk : chunk.subarray(at, at + pieceBytes);
      const last = at + pieceBytes >= chunk.length;
      const flushed =
        onFlushed && last
          ? destination.write(piece, (err) => {
              if (!err) onFlushed(chunk.length);
            })
          : destination.write(piece);
      position += piece.length;
      onChunk?.(position, piece.length);
      if (!flushed && !(await drained(destination))) return false;
    }
  }
  return !destination.destroyed;
}

/** Resolves true on 'drain', false if the destination closes first. */
function drained(destination: Writable): Promise<boolean> {
  return new Promise((resolve) => {
    const onDrain = (): void => {
      destination.off('close', onClose);
      resolve(true);
    };
    const onClose = (): void => {
      destination.off('drain', onDrain);
      resolve(false);
    };
    destination.once('drain', onDrain);
    destination.once('close', onClose);
  });
}
