/**
 * How many bytes of a TCP connection its peer has acknowledged, from the kernel (TCP_INFO, through
 * the native addon: native/socket-queue.cc). Node itself knows only when whole write requests
 * reached the kernel, whose send buffer (up to several MiB) wakes a writer only after a large part
 * of it drained: measured that way, a peer reading a few KiB/s looks idle for minutes. Without the
 * addon (not built, ODB_NATIVE=off, not Linux) `ackedBytes` is undefined and callers fall back.
 */
import type { Socket } from 'node:net';
import { loadLazyBinding } from '../../native/binding.js';

interface AckedBinding {
  socketBytesAcked(fd: number): number;
}

let loaded: { binding: AckedBinding | undefined; reason: string | undefined } | undefined;

function binding(): AckedBinding | undefined {
  if (!loaded) {
    const result = loadLazyBinding(process.env.ODB_NATIVE !== 'off');
    loaded =
      'binding' in result &&
      typeof (result.binding as Partial<AckedBinding>).socketBytesAcked === 'function'
        ? { binding: result.binding as unknown as AckedBinding, reason: undefined }
        : {
            binding: undefined,
            reason: 'reason' in result ? result.reason : 'the addon has no socketBytesAcked',
          };
  }
  return loaded.binding;
}

/** Why acknowledged bytes cannot be read here, or undefined when they can. */
export function ackedBytesUnavailable(): string | undefined {
  binding();
  return loaded!.reason;
}

/** Bytes of `socket`'s connection the peer acknowledged; undefined when the kernel cannot say. */
export function ackedBytes(socket: Socket): number | undefined {
  const native = binding();
  const fd = (socket as Socket & { _handle?: { fd?: number } | null })._handle?.fd;
  if (!native || typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return native.socketBytesAcked(fd);
  } catch {
    return undefined; // not TCP (a pipe), or closing
  }
}
