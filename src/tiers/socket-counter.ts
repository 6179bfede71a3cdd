/** Byte counts per group of sockets, for the tiers' metrics. */
import type { Socket } from 'node:net';
import { socketBytes } from '../core/net/socket-handoff.js';

/**
 * Bytes read from and written to a group of sockets (e.g. all upstream connections of a tier),
 * as Node counts them at the socket (headers and framing included, which is what crosses the
 * wire), plus what kernel transfers moved on it.
 */
export class SocketByteCounter {
  #closedRead = 0;
  #closedWritten = 0;
  readonly #live = new Set<Socket>();

  /** Counts this socket from now until it closes. */
  track(socket: Socket): void {
    this.#live.add(socket);
    socket.once('close', () => {
      const { read, written } = socketBytes(socket);
      this.#closedRead += read;
      this.#closedWritten += written;
      this.#live.delete(socket);
    });
  }

  get bytesRead(): number {
    let total = this.#closedRead;
    for (const socket of this.#live) total += socketBytes(socket).read;
    return total;
  }

  get bytesWritten(): number {
    let total = this.#closedWritten;
    for (const socket of this.#live) total += socketBytes(socket).written;
    return total;
  }
}
