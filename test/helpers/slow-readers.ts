// Clients that read too slowly, or not at all, on raw sockets: what a careless or hostile peer
// does to hold a server's resources.
import { connect, type Socket } from 'node:net';

/** A raw GET whose response head was read; the body is then read slowly or not at all. */
export interface RawReader {
  readonly socket: Socket;
  readonly status: number;
  /** The `odb-error` header, if any. */
  readonly errorCode: string | undefined;
  /** Body bytes taken so far (head excluded). */
  readonly bodyBytes: () => number;
  /** True once the server (or anyone) closed the connection. */
  readonly closed: () => boolean;
  /** Stops reading and closes. */
  destroy(): void;
}

/**
 * How a {@link RawReader} takes its body after the head. A tick takes at most what the socket
 * has buffered (its high-water mark, 16 KiB), so fast paces need short ticks.
 */
export interface ReadPace {
  /** Bytes taken per tick; 0: never reads another byte (the socket stays paused). */
  readonly bytesPerTick: number;
  readonly tickMs: number;
}

/** A reader that takes nothing after the head. */
export const neverReads: ReadPace = { bytesPerTick: 0, tickMs: 1000 };

/**
 * Sends `GET path` on a new connection to `host:port` (from `localAddress` if given: another
 * loopback address is another peer), reads the response head, then reads the body at `pace`.
 */
export function rawGet(
  host: string,
  port: number,
  path: string,
  pace: ReadPace,
  localAddress?: string,
): Promise<RawReader> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localAddress });
    let head = Buffer.alloc(0);
    let body = 0;
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    socket.on('error', () => {}); // a cut is what some tests wait for; 'close' reports it
    socket.on('close', () => {
      closed = true;
      clearInterval(timer);
      reject(new Error(`connection closed before a response head (${head.length} bytes)`));
    });
    const onHead = (data: Buffer): void => {
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onHead);
      socket.pause();
      // What came with the head stays unread in the socket: put it back.
      const rest = head.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      const text = head.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const errorCode = /^odb-error:\s*(\S+)/im.exec(text)?.[1];
      if (pace.bytesPerTick > 0) {
        timer = setInterval(() => {
          for (let want = pace.bytesPerTick; want > 0;) {
            const chunk =
              (socket.read(Math.min(want, socket.readableLength || want)) as Buffer | null) ??
              (socket.read() as Buffer | null);
            if (!chunk) break;
            body += chunk.length;
            want -= chunk.length;
          }
        }, pace.tickMs);
      }
      resolve({
        socket,
        status,
        errorCode,
        bodyBytes: () => body,
        closed: () => closed,
        destroy: () => {
          clearInterval(timer);
          socket.destroy();
        },
      });
    };
    socket.on('data', onHead);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: odb-test\r\n\r\n`);
  });
}
