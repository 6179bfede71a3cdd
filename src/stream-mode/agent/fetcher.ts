/**
 * Fetches a descriptor's bytes into one buffer over `node:http` keep-alive connections: the page
 * fills of a stream-mode agent. The agent does not use the undici {@link StoreClient}: undici
 * adds about 5 MB to the agent's heap, and past about 8 MB V8 marks that heap over and over at
 * the allocation rate of page fills (docs/stream-mode.md, "Cost").
 */
import { Agent, request } from 'node:http';
import { OdbError } from '../../core/errors.js';
import { parseHostPort } from '../../core/net/address.js';
import { descriptorToText, type Descriptor } from '../../protocol/descriptor.js';
import { errorHeader, payloadPath } from '../../protocol/store-rpc.js';
import { classify, refusalError } from '../../store/fetch-errors.js';

/** Options of a {@link BufferFetcher}. */
export interface BufferFetcherOptions {
  /** Deadline of one whole fetch (connect, head and body), in ms. */
  readonly fetchTimeoutMs: number;
  /** Kept-alive connections per store endpoint. */
  readonly connectionsPerStore: number;
}

/** Largest error body read from a refusing store. */
const maxErrorBodyBytes = 16 * 1024;

export class BufferFetcher {
  readonly #agent: Agent;
  readonly #timeoutMs: number;

  constructor(options: BufferFetcherOptions) {
    this.#timeoutMs = options.fetchTimeoutMs;
    this.#agent = new Agent({ keepAlive: true, maxSockets: options.connectionsPerStore });
  }

  /**
   * The bytes of a closed descriptor's range, written into `into` (descriptor.length bytes; a
   * new buffer by default); rejects with an OdbError (its code says whether a retry can help:
   * ODB_ERR_NOT_FOUND and ODB_ERR_BAD_MAC cannot).
   */
  fetchBuffer(
    descriptor: Descriptor,
    into: Buffer = Buffer.allocUnsafe(descriptor.length),
  ): Promise<Buffer> {
    if (descriptor.open)
      return Promise.reject(new OdbError('ODB_ERR_PROTOCOL', 'cannot fetch an open payload'));
    if (into.length !== descriptor.length)
      return Promise.reject(
        new OdbError(
          'ODB_ERR_PROTOCOL',
          `${into.length}-byte target for ${descriptor.length} bytes`,
        ),
      );
    const { host, port } = parseHostPort(descriptor.endpoint, 'store endpoint');
    return new Promise<Buffer>((resolve, reject) => {
      let phase: 'connecting' | 'waiting' = 'connecting';
      let timedOut: 'connecting' | 'waiting' | undefined;
      const fail = (err: unknown): void => {
        clearTimeout(timer);
        reject(classify(err, timedOut));
      };
      const req = request(
        { host, port, path: payloadPath(descriptorToText(descriptor)), agent: this.#agent },
        (res) => {
          res.on('error', fail);
          if (res.statusCode !== 200) {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (part: string) => {
              if (text.length < maxErrorBodyBytes) text += part;
            });
            res.on('end', () => {
              clearTimeout(timer);
              reject(refusalError(res.statusCode ?? 0, res.headers[errorHeader], text));
            });
            return;
          }
          const length = Number(res.headers['content-length']);
          if (length !== descriptor.length) {
            req.destroy();
            fail(
              new OdbError(
                'ODB_ERR_PROTOCOL',
                `store announced ${res.headers['content-length']} bytes, expected ${descriptor.length}`,
              ),
            );
            return;
          }
          let at = 0;
          res.on('data', (chunk: Buffer) => {
            at += chunk.copy(into, at);
          });
          res.on('end', () => {
            clearTimeout(timer);
            if (at === length) resolve(into);
            else reject(new OdbError('ODB_ERR_FETCH_ABORTED', `${at} of ${length} bytes`));
          });
          // The store failed mid-body: it closes before the announced length.
          res.on('aborted', () =>
            fail(
              new OdbError('ODB_ERR_FETCH_ABORTED', `store closed after ${at} of ${length} bytes`),
            ),
          );
        },
      );
      req.on('socket', (socket) => {
        if (!socket.connecting) phase = 'waiting';
        else socket.once('connect', () => (phase = 'waiting'));
      });
      req.on('error', fail);
      const timer = setTimeout(() => {
        timedOut = phase;
        const code = phase === 'waiting' ? 'ODB_ERR_FETCH_TIMEOUT' : 'ODB_ERR_STORE_UNREACHABLE';
        req.destroy(new OdbError(code, `no complete answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      req.end();
    });
  }

  /** Closes every kept-alive connection. */
  close(): void {
    this.#agent.destroy();
  }
}
