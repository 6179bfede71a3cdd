/** Byte counts per group of sockets, for the tiers' metrics. */
import type { Socket } from 'node:net';

/**
 * Bytes read from and written to a group of sockets (e.g. all upstream connections of a tier),
 * as Node counts them at the socket: headers and framing included, which is what crosses the wire.
 */
export class SocketByteCounter {
  #closedRead = 0;
  #closedWritten = 0;
  readonly #live = new Set<Socket>();

  /** Counts this socket from now until it closes. */
  track(socket: Socket): void {
    this.#live.add(socket);
    socket.once('close', () => {
      this.#closedRead += socket.bytesRead;
      this.#closedWritten += socket.bytesWritten;
      this.#live.delete(socket);
    });
  }

  get bytesRead(): number {
    let total = this.#closedRead;
    for (const socket of this.#live) total += socket.bytesRead;
    return total;
  }

  get bytesWritten(): number {
    let total = this.#closedWritten;
    for (const socket of this.#live) total += socket.bytesWritten;
    return total;
  }
}
