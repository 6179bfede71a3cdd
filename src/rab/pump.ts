import type { Writable } from 'node:stream';
import type { PayloadSource } from './payload-source.js';

/**
 * Writes `[start, end)` of `source` into `destination` with backpressure. Resolves true once every
 * byte was handed to it (the destination is not ended), false if it closed first; rejects when
 * the source fails. `onChunk` runs after each write with the position reached.
 */
export async function pumpSource(
  source: PayloadSource,
  start: number,
  end: number | undefined,
  destination: Writable,
  onChunk?: (position: number, bytes: number) => void,
): Promise<boolean> {
  let position = start;
  for await (const chunk of source.read(start, end)) {
    if (destination.destroyed) return false;
    position += chunk.length;
    const flushed = destination.write(chunk);
    onChunk?.(position, chunk.length);
    if (!flushed && !(await drained(destination))) return false;
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
