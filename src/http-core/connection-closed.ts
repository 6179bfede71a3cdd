/**
 * One abort signal per connection, aborted when the connection closes. A response queued behind
 * a pipelined one has no socket yet, so nothing it writes or waits for learns that its client
 * went away: work done for it (a fetch holding a store connection) waits on this instead. One
 * 'close' listener per connection, however many requests share it.
 */
import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import { DestinationClosedError } from './response-sink.js';

const signals = new WeakMap<Socket, AbortSignal>();

/** The signal of `socket`'s close; its reason is a DestinationClosedError. */
export function connectionClosedSignal(socket: Socket): AbortSignal {
  let signal = signals.get(socket);
  if (signal) return signal;
  const controller = new AbortController();
  signal = controller.signal;
  // Each request in flight on the connection listens, and removes its listener when done: as
  // many as a connection may pipeline, not a leak.
  setMaxListeners(0, signal);
  signals.set(socket, signal);
  if (socket.destroyed) controller.abort(new DestinationClosedError());
  else socket.once('close', () => controller.abort(new DestinationClosedError()));
  return signal;
}
