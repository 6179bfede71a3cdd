import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { finished } from 'node:stream';
import { closeServer, listenServer } from '../net/listen.js';
import { OdbError, isOdbError, type OdbErrorCode } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { parseByteRange, contentRange } from '../protocol/byte-range.js';
import {
  descriptorFromText,
  payloadIdHex,
  verifyDescriptor,
  type Descriptor,
} from '../protocol/descriptor.js';
import {
  errorHeader,
  payloadPathPrefix,
  pingPath,
  referencesPath,
  referencesProtocol,
  releaseHeader,
  releaseOnComplete,
  statusForError,
  type StorePing,
} from '../protocol/store-rpc.js';
import { isKeyChallenge, keyProof } from '../protocol/key-proof.js';
import { pumpSource } from './pump.js';
import { serveReferenceChannel } from './reference-channel.js';
import { referenceToken } from './references.js';
import type { BufferStore, StoreEntry } from './store.js';

/** Options of a {@link StoreServer}. */
export interface StoreServerOptions {
  readonly store: BufferStore;
  /** Fetches streaming at once before new ones get ODB_ERR_BUSY. Default 4096. */
  readonly maxConcurrentFetches?: number;
  /** Called with every accepted connection (for byte counters). */
  readonly onSocket?: (socket: Socket) => void;
  /**
   * How long a fetch or retain of an unknown payload waits for its registration (stream mode
   * registers payloads from another thread, so a fetch may overtake it). Default 0.
   */
  readonly registrationWaitMs?: number;
  /** More counters for the ping answer (stream mode: the agent's lazy-buffer counters). */
  readonly pingExtras?: () => Pick<
    StorePing,
    'faults' | 'faultBytes' | 'fetchFailures' | 'lazyRegions' | 'ownPayloadBytes'
  >;
  readonly logger?: Logger;
}

/** Counters of a store server; exposed as metrics. */
export interface StoreServerStats {
  fetches: number;
  fetchedBytes: number;
  inFlight: number;
  errors: Partial<Record<OdbErrorCode, number>>;
}

/**
 * Serves a {@link BufferStore} over the fetch protocol (docs/protocol.md §4): only ranges named
 * by valid descriptors, streamed with backpressure. Malformed HTTP closes that connection only.
 */
export class StoreServer {
  readonly store: BufferStore;
  readonly stats: StoreServerStats = { fetches: 0, fetchedBytes: 0, inFlight: 0, errors: {} };
  readonly #server: Server;
  readonly #maxConcurrent: number;
  readonly #log: Logger;
  readonly #registrationWaitMs: number;
  readonly #pingExtras: StoreServerOptions['pingExtras'];
  /** Open reference channels (upgraded sockets the HTTP server no longer tracks). */
  readonly #channels = new Set<Socket>();

  constructor(options: StoreServerOptions) {
    this.store = options.store;
    this.#maxConcurrent = options.maxConcurrentFetches ?? 4096;
    this.#log = options.logger ?? silentLogger;
    this.#registrationWaitMs = options.registrationWaitMs ?? 0;
    this.#pingExtras = options.pingExtras;
    this.#server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.#handle(req, res));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.#upgrade(req, socket, head),
    );
    if (options.onSocket) this.#server.on('connection', options.onSocket);
  }

  /**
   * Listens on `host:port` (port 0: any) and advertises `advertise` (default: the bound address)
   * as the store's endpoint. Resolves to the bound `host:port`.
   */
  async listen(host: string, port: number, advertise?: string): Promise<string> {
    const bound = await listenServer(this.#server, { host, port });
    this.store.advertise(advertise ?? bound);
    return bound;
  }

  /** Stops accepting, closes idle connections and waits for streaming fetches to end. */
  close(): Promise<void> {
    // Reference channels stay open for their holder's life: the store closing ends them.
    for (const socket of this.#channels) socket.end();
    return closeServer(this.#server);
  }

  /** Destroys every connection at once. */
  closeAllConnections(): void {
    this.#server.closeAllConnections();
    for (const socket of this.#channels) socket.destroy();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '';
    if (url.startsWith(payloadPathPrefix)) {
      const end = url.indexOf('?');
      const text = url.slice(payloadPathPrefix.length, end === -1 ? undefined : end);
      if (req.method === 'GET') {
        void this.#fetch(req, res, text);
        return;
      }
      if (req.method === 'DELETE') {
        this.#release(res, text);
        return;
      }
      res.writeHead(405, { allow: 'GET, DELETE' }).end();
      return;
    }
    if (url === referencesPath) {
      res.writeHead(426, { connection: 'Upgrade', upgrade: referencesProtocol }).end();
      return;
    }
    if ((url === pingPath || url.startsWith(`${pingPath}?`)) && req.method === 'GET') {
      const { entries, chargedBytes, registered } = this.store.stats;
      const challenge = new URLSearchParams(url.slice(pingPath.length + 1)).get('challenge');
      const signing = this.store.keyring.signing;
      const answer: StorePing = {
        ok: true,
        endpoint: this.store.endpoint!,
        entries,
        chargedBytes,
        registered,
        ...(challenge !== null && isKeyChallenge(challenge)
          ? { keyId: signing.id, proof: keyProof(signing, challenge) }
          : {}),
        ...this.#pingExtras?.(),
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      return;
    }
    res.writeHead(404).end();
  }

  #authorise(text: string): Descriptor {
    const descriptor = descriptorFromText(text);
    verifyDescriptor(descriptor, this.store.keyring, Date.now());
    return descriptor;
  }

  /** Waits (briefly, in stream mode) for a payload registered by another thread. */
  async #known(id: string): Promise<void> {
    if (this.store.has(id) || this.#registrationWaitMs === 0) return;
    await this.store.whenRegistered(id, this.#registrationWaitMs);
  }

  /** `GET /odb/v1/references` with `Upgrade: odb-references/1` opens a reference channel. */
  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const wanted = req.headers.upgrade?.toLowerCase() === referencesProtocol;
    if (req.url !== referencesPath || req.method !== 'GET' || !wanted) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${referencesProtocol}\r\n\r\n`,
    );
    this.#channels.add(socket);
    socket.on('close', () => this.#channels.delete(socket));
    serveReferenceChannel(socket, head, (line) => this.#applyReference(line));
  }

  /**
   * Applies one `retain <descriptor>` / `release <descriptor>` line of a reference channel. A
   * retain of a payload not registered yet waits for it (see BufferStore.retainReference).
   */
  #applyReference(line: string): void {
    const space = line.indexOf(' ');
    const verb = line.slice(0, space);
    if (space === -1 || (verb !== 'retain' && verb !== 'release')) {
      throw new OdbError(
        'ODB_ERR_PROTOCOL',
        `unknown reference line ${JSON.stringify(line.slice(0, 64))}`,
      );
    }
    const descriptor = descriptorFromText(line.slice(space + 1));
    // A release only gives back, so it is honoured after the descriptor expired: a holder may
    // keep a buffer past the TTL, and refusing would keep the payload until its own expiry.
    verifyDescriptor(descriptor, this.store.keyring, verb === 'release' ? 0 : Date.now());
    const id = payloadIdHex(descriptor);
    const token = referenceToken(descriptor.bytes);
    if (verb === 'retain') this.store.retainReference(id, token);
    else this.store.releaseReference(id, token);
  }

  #release(res: ServerResponse, text: string): void {
    try {
      const descriptor = this.#authorise(text);
      this.store.release(payloadIdHex(descriptor));
      res.writeHead(204).end();
    } catch (err) {
      this.#fail(res, err);
    }
  }

  async #fetch(req: IncomingMessage, res: ServerResponse, text: string): Promise<void> {
    let entry: StoreEntry | undefined;
    try {
      if (this.stats.inFlight >= this.#maxConcurrent) {
        throw new OdbError('ODB_ERR_BUSY', `${this.stats.inFlight} fetches in flight`);
      }
      const descriptor = this.#authorise(text);
      const id = payloadIdHex(descriptor);
      await this.#known(id);
      entry = this.store.beginRead(id);
      this.stats.inFlight++;
      this.stats.fetches++;
      const plan = planFetch(descriptor, entry, req.headers.range);
      await entry.source.verify?.();
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
      };
      if (plan.length !== undefined) headers['content-length'] = plan.length;
      if (plan.contentRange) headers['content-range'] = plan.contentRange;
      res.writeHead(plan.contentRange ? 206 : 200, headers);
      const consumes = req.headers[releaseHeader] === releaseOnComplete && plan.wholeRange;
      const complete = await this.#stream(res, entry, plan.start, plan.end, consumes);
      if (complete && consumes) this.store.release(id);
    } catch (err) {
      this.#fail(res, err);
    } finally {
      if (entry) {
        // The socket may still be writing chunks of the payload's memory (a source may yield
        // views of memory it frees when the store drops it): the read ends once it is not.
        // 'finish' follows the last write's callback; a destroyed socket cancels pending writes.
        await new Promise<void>((resolve) => finished(res, () => resolve()));
        this.store.endRead(entry);
        this.stats.inFlight--;
      }
    }
  }

  /** Streams the bytes; resolves true when every byte was handed to the socket. */
  async #stream(
    res: ServerResponse,
    entry: StoreEntry,
    start: number,
    end: number | undefined,
    consumes: boolean,
  ): Promise<boolean> {
    const complete = await pumpSource(entry.source, start, end, res, (position, bytes) => {
      this.stats.fetchedBytes += bytes;
      // An open payload is a single-consumer pipe: free what the consumer has taken.
      if (consumes && entry.open) entry.source.discardBefore?.(position);
    });
    if (complete) res.end();
    return complete;
  }

  #fail(res: ServerResponse, err: unknown): void {
    const code: OdbErrorCode = isOdbError(err) ? err.code : 'ODB_ERR_PAYLOAD_FAILED';
    this.stats.errors[code] = (this.stats.errors[code] ?? 0) + 1;
    if (res.headersSent) {
      // Mid-body: the only honest signal is to cut the connection short of the announced length.
      this.#log.warn({ code, err: String(err) }, 'store fetch aborted mid-body');
      res.destroy(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    this.#log.info({ code, message }, 'store request refused');
    const body = JSON.stringify({ code, message });
    res
      .writeHead(statusForError(code), { 'content-type': 'application/json', [errorHeader]: code })
      .end(body);
  }
}

interface FetchPlan {
  /** Absolute start within the payload. */
  readonly start: number;
  /** Absolute end (exclusive); undefined: to the end of an open payload. */
  readonly end: number | undefined;
  /** Bytes to send, when known. */
  readonly length: number | undefined;
  readonly contentRange?: string;
  /** True when the whole descriptor range is sent. */
  readonly wholeRange: boolean;
}

/** Resolves which bytes to send: the descriptor's range, narrowed by a relative Range header. */
function planFetch(descriptor: Descriptor, entry: StoreEntry, rangeHeader?: string): FetchPlan {
  if (descriptor.open !== entry.open) {
    throw new OdbError('ODB_ERR_OUT_OF_RANGE', 'descriptor and payload disagree on being open');
  }
  if (descriptor.open) {
    return { start: descriptor.offset, end: undefined, length: undefined, wholeRange: true };
  }
  const size = entry.source.size ?? 0;
  if (descriptor.totalSize !== size || descriptor.offset + descriptor.length > size) {
    throw new OdbError('ODB_ERR_OUT_OF_RANGE', `descriptor range exceeds the ${size}-byte payload`);
  }
  const range = parseByteRange(rangeHeader, descriptor.length);
  if (range === 'unsatisfiable') {
    throw new OdbError(
      'ODB_ERR_OUT_OF_RANGE',
      `Range ${rangeHeader} of ${descriptor.length} bytes`,
    );
  }
  if (range === undefined) {
    const start = descriptor.offset;
    return { start, end: start + descriptor.length, length: descriptor.length, wholeRange: true };
  }
  const length = range.end - range.start + 1;
  return {
    start: descriptor.offset + range.start,
    end: descriptor.offset + range.end + 1,
    length,
    contentRange: contentRange(range, descriptor.length),
    wholeRange: length === descriptor.length,
  };
}
