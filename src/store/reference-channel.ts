/**
 * The reference channel (docs/protocol.md §4): one long-lived upgraded connection from a holder's
 * agent to an owner's store, carrying `retain <descriptor>` / `release <descriptor>` lines that the
 * store applies in order. It replaces an HTTP request per batch of references, which cost each
 * side more CPU than the reference work itself; the store answers only lines it could not apply.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { OdbError, isOdbError } from '../core/errors.js';
import type { ClusterKey } from '../core/keys/keyring.js';
import { parseHostPort } from '../core/net/address.js';
import { channelProof, channelProofHeader } from '../protocol/key-proof.js';
import {
  maxReferenceLineBytes,
  referencesPath,
  referencesProtocol,
} from '../protocol/store-rpc.js';

/**
 * A `data` handler that calls `onLine` for each complete `\n`-terminated line (without the
 * newline; empty lines skipped) and `onOverflow` once when a line grows past `maxBytes`.
 */
export function lineReader(
  onLine: (line: string) => void,
  onOverflow: () => void,
  maxBytes = maxReferenceLineBytes,
): (chunk: Buffer) => void {
  let partial = '';
  let overflowed = false;
  return (chunk) => {
    if (overflowed) return;
    // Descriptor text is base64url: anything outside ASCII fails its parse with a clear error.
    const text = partial + chunk.toString('latin1');
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      if (end - start > maxBytes) {
        // Too long, even if it arrived whole.
        overflowed = true;
        onOverflow();
        return;
      }
      if (end > start) onLine(text.slice(start, end));
      start = end + 1;
    }
    partial = text.slice(start);
    if (partial.length > maxBytes) {
      overflowed = true;
      onOverflow();
    }
  };
}

/** One line of the store's answer: a line it could not apply, and why. */
export function errorLine(err: unknown): string {
  const code = isOdbError(err) ? err.code : 'ODB_ERR_PROTOCOL';
  const message = String((err as Error)?.message ?? err).replace(/[\r\n]+/g, ' ');
  return `error ${code} ${message}\n`;
}

/** Answers written to a client that does not read them before the store gives up on it. */
const maxUnreadAnswerBytes = 1024 * 1024;
/**
 * Lines in a row a channel may send that cannot be applied before the store closes it: a holder
 * sends a few (an expired descriptor), a broken or hostile one sends nothing else.
 */
const maxRefusedLinesInARow = 1000;

/**
 * Serves one reference channel on an upgraded socket: `apply` each line in order; a line it
 * throws on is answered with an `error` line and the channel goes on (an expired or forged
 * descriptor must not cost the lines after it). Only an over-long line closes the channel.
 */
export function serveReferenceChannel(
  socket: Socket,
  head: Buffer,
  apply: (line: string) => void,
): void {
  const answer = (text: string): void => {
    if (socket.writableLength > maxUnreadAnswerBytes) socket.destroy();
    else socket.write(text);
  };
  let refusedInARow = 0;
  const onData = lineReader(
    (line) => {
      try {
        apply(line);
        refusedInARow = 0;
      } catch (err) {
        answer(errorLine(err));
        if (++refusedInARow >= maxRefusedLinesInARow) {
          socket.end(`error ODB_ERR_PROTOCOL ${maxRefusedLinesInARow} lines refused in a row\n`);
          socket.destroySoon();
        }
      }
    },
    () => {
      socket.end(`error ODB_ERR_PROTOCOL line longer than ${maxReferenceLineBytes} bytes\n`);
    },
  );
  socket.setNoDelay(true);
  socket.on('data', onData);
  // A holder that goes away is routine; its lines so far were applied.
  socket.on('error', () => socket.destroy());
  socket.on('end', () => socket.end());
  if (head.length > 0) onData(head);
}

/** Options of {@link ReferenceChannels}. */
export interface ReferenceChannelOptions {
  /** Budget for connecting and the store's 101 answer, in ms. */
  readonly connectTimeoutMs: number;
  /** Lines lost (the store was unreachable or closed) or refused by the store. */
  readonly onProblem?: (endpoint: string, message: string) => void;
  /** Signs the channel's opening: a store serves channels only to holders of the cluster key. */
  readonly signingKey: ClusterKey;
}

interface Channel {
  socket: Socket | undefined;
  /** Lines waiting for the connection or for this turn's write. */
  pending: string[];
  flushScheduled: boolean;
}

/**
 * The holder's side: one channel per owner endpoint, opened on first use and again after it
 * closes. Lines sent in one turn of the event loop leave in one write, in the order sent.
 */
export class ReferenceChannels {
  readonly #channels = new Map<string, Channel>();
  readonly #options: ReferenceChannelOptions;

  constructor(options: ReferenceChannelOptions) {
    this.#options = options;
  }

  /** Queues one `retain …` / `release …` line (no newline) for the store at `endpoint`. */
  send(endpoint: string, line: string): void {
    let channel = this.#channels.get(endpoint);
    if (!channel) {
      channel = { socket: undefined, pending: [], flushScheduled: false };
      this.#channels.set(endpoint, channel);
      this.#connect(endpoint, channel);
    }
    channel.pending.push(line);
    if (channel.socket && !channel.flushScheduled) {
      channel.flushScheduled = true;
      setImmediate(() => this.#flush(channel));
    }
  }

  /** Closes every channel; lines not yet written are dropped. */
  close(): void {
    for (const channel of this.#channels.values()) channel.socket?.destroy();
    this.#channels.clear();
  }

  #flush(channel: Channel): void {
    channel.flushScheduled = false;
    if (!channel.socket || channel.pending.length === 0) return;
    channel.socket.write(channel.pending.join('\n') + '\n');
    channel.pending = [];
  }

  #connect(endpoint: string, channel: Channel): void {
    const { host, port } = parseHostPort(endpoint, 'store endpoint');
    let settled = false;
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      if (this.#channels.get(endpoint) === channel) this.#channels.delete(endpoint);
      const lost = channel.pending.length;
      channel.pending = [];
      this.#options.onProblem?.(endpoint, `${lost} reference line(s) lost: ${reason}`);
    };
    const req = request({
      host,
      port,
      path: referencesPath,
      headers: {
        connection: 'Upgrade',
        upgrade: referencesProtocol,
        [channelProofHeader]: channelProof(this.#options.signingKey, endpoint, Date.now()),
      },
      agent: false,
      timeout: this.#options.connectTimeoutMs,
    });
    req.on('timeout', () =>
      req.destroy(new OdbError('ODB_ERR_STORE_UNREACHABLE', 'no answer within the connect budget')),
    );
    req.on('error', (err) => fail(err.message));
    req.on('response', (res) => {
      res.resume();
      fail(`the store answered ${res.statusCode} instead of opening a reference channel`);
    });
    req.on('upgrade', (res, socket: Socket, head: Buffer) => {
      if (settled || this.#channels.get(endpoint) !== channel) {
        socket.destroy();
        return;
      }
      settled = true;
      socket.setNoDelay(true);
      const onData = lineReader(
        (line) => this.#options.onProblem?.(endpoint, `the store refused a line: ${line}`),
        () => socket.destroy(),
      );
      socket.on('data', onData);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        if (this.#channels.get(endpoint) !== channel) return;
        this.#channels.delete(endpoint);
        // Lines written before the close may be lost with it: their payloads expire at the TTL.
        if (channel.pending.length > 0)
          this.#options.onProblem?.(
            endpoint,
            `${channel.pending.length} reference line(s) lost: channel closed`,
          );
      });
      if (head.length > 0) onData(head);
      channel.socket = socket;
      this.#flush(channel);
    });
    req.end();
  }
}
