/**
 * The fetch server of a buffer store (docs/protocol.md §4): `GET` of a signed descriptor's range,
 * `DELETE` to release it, a ping, and stream mode's reference channels; bounded in connections,
 * concurrent fetches and send rate, every refusal a coded answer.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { finished } from 'node:stream';
import { closeServer, listenServer } from '../core/net/listen.js';
import { OdbError, isOdbError, type OdbErrorCode } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';
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
import {
  channelProofHeader,
  checkChannelProof,
  isKeyChallenge,
  keyProof,
} from '../protocol/key-proof.js';
import { ListenerGuard, type ListenerLimits } from '../http-core/listener-limits.js';
import { SendWatchdog } from '../core/net/send-rate.js';
import { ackedBytesUnavailable } from '../core/net/socket-progress.js';
import {
  FetchAdmission,
  peerAddress,
  type FetchLimitKind,
  type FetchLimits,
} from './fetch-limits.js';
import { maxViewWriteBytes, pumpSource } from './pump.js';
import { serveReferenceChannel } from './reference-channel.js';
import { CountedStore } from './counted-store.js';
import { referenceToken } from './references.js';
import type { BufferStore, StoreEntry } from './store.js';
import { TransitAccount } from './transit.js';
import { KernelSender, type StoreSendStats } from './kernel-send.js';

/** Default `--store-send-timeout`: see {@link StoreServerOptions.sendTimeoutMs}. */
export const defaultStoreSendTimeoutMs = 120_000;

/** Options of a {@link StoreServer}. */
export interface StoreServerOptions {
  readonly store: BufferStore;
  /** Fetches streaming at once before new ones get ODB_ERR_BUSY. Default 4096. */
  readonly maxConcurrentFetches?: number;
  /** Fetches of one payload streaming at once (ODB_ERR_BUSY beyond). Default 64. */
  readonly maxFetchesPerPayload?: number;
  /** Fetches from one remote address streaming at once (ODB_ERR_BUSY beyond). Default 1024. */
  readonly maxFetchesPerPeer?: number;
  /**
   * A connection with response bytes queued that takes none of them for this long is cut, and
   * its fetch's buffers freed; 0: never. A backstop for peers that stopped reading: a front end
   * pauses its fetch while its own client is slow, and the front end's `--send-timeout` should
   * cut such a client first, so keep this longer. Default 120 000.
   */
  readonly sendTimeoutMs?: number;
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
  /** Reference channels open at once (stream mode: one per holder process). Default 1024. */
  readonly maxReferenceChannels?: number;
  /** Limits of the store's listener (default: a client listener's, without a per-connection request limit). */
  readonly limits?: Partial<ListenerLimits>;
  readonly logger?: Logger;
  /**
   * Send file payloads by sendfile(2) when the native addon is there (default: unless
   * ODB_NATIVE=off); otherwise, and for other payloads, JavaScript copies the bytes.
   */
  readonly native?: boolean;
}

/** Counters of a store server; exposed as metrics. */
export interface StoreServerStats {
  fetches: number;
  fetchedBytes: number;
  inFlight: number;
  errors: Partial<Record<OdbErrorCode, number>>;
  /** Fetches refused with ODB_ERR_BUSY, by the limit reached. */
  refused: Record<FetchLimitKind, number>;
  /** Connections cut because their peer stopped taking the bytes (see `sendTimeoutMs`). */
  sendTimeouts: number;
  /** Reference channels refused: no valid key proof, or too many open. */
  refusedChannels: number;
  /** Fetches whose bytes the kernel sent, and those JavaScript copied (by reason). */
  sends: StoreSendStats;
}

/**
 * Serves a {@link BufferStore} over the fetch protocol (docs/protocol.md §4): only ranges named
 * by valid descriptors, streamed with backpressure. Malformed HTTP closes that connection only.
 */
export class StoreServer {
  readonly store: BufferStore;
  /** The listener's limits and their hits (`odb_limit_hits_total{listener="store"}`). */
  readonly guard: ListenerGuard;
  readonly #admission: FetchAdmission;
  readonly #watchdog: SendWatchdog;
  readonly #kernel: KernelSender;
  readonly #counts = { fetches: 0, fetchedBytes: 0, errors: {} as StoreServerStats['errors'] };
  readonly #server: Server;
  readonly #log: Logger;
  readonly #registrationWaitMs: number;
  readonly #pingExtras: StoreServerOptions['pingExtras'];
  /** Open reference channels (upgraded sockets the HTTP server no longer tracks). */
  readonly #channels = new Set<Socket>();
  readonly #maxChannels: number;
  #refusedChannels = 0;
  /**
   * Views of payload memory go out in writes this large: the send watchdog reads progress from
   * the kernel's acknowledged bytes then, not from `writableLength`, which moves per write.
   */
  readonly #viewWriteBytes = ackedBytesUnavailable() ? undefined : maxViewWriteBytes;

  constructor(options: StoreServerOptions) {
    this.store = options.store;
    this.#admission = new FetchAdmission({
      maxFetches: options.maxConcurrentFetches,
      maxFetchesPerPayload: options.maxFetchesPerPayload,
      maxFetchesPerPeer: options.maxFetchesPerPeer,
    } satisfies Partial<FetchLimits>);
    this.#log = options.logger ?? silentLogger;
    this.#watchdog = new SendWatchdog({
      timeoutMs: options.sendTimeoutMs ?? defaultStoreSendTimeoutMs,
      minBytesPerSecond: 0,
      onCut: (socket, cut) =>
        this.#log.warn(
          { code: 'ODB_ERR_SEND_TIMEOUT', peer: peerAddress(socket.remoteAddress), ...cut },
          'store connection cut: its peer stopped reading',
        ),
    });
    this.#kernel = new KernelSender(
      options.native ?? process.env.ODB_NATIVE !== 'off',
      options.sendTimeoutMs ?? defaultStoreSendTimeoutMs,
      this.#log,
    );
    this.#registrationWaitMs = options.registrationWaitMs ?? 0;
    this.#maxChannels = options.maxReferenceChannels ?? 1024;
    this.#pingExtras = options.pingExtras;
    // Front ends keep pooled connections for thousands of fetches: no per-connection request limit.
    this.guard = new ListenerGuard({ maxRequestsPerConnection: 0, ...options.limits });
    this.#server = createServer(
      this.guard.serverOptions(),
      this.guard.wrap((req, res) => this.#handle(req, res)),
    );
    this.guard.attach(this.#server);
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.#upgrade(req, socket, head),
    );
    this.#server.on('connection', (socket: Socket) => this.#watchdog.watch(socket));
    if (options.onSocket) this.#server.on('connection', options.onSocket);
  }

  /** Counters, read when scraped. */
  get stats(): Readonly<StoreServerStats> {
    return {
      ...this.#counts,
      inFlight: this.#admission.inFlight,
      refused: { ...this.#admission.refused },
      sendTimeouts: this.#watchdog.stats.cut + this.#kernel.idleCuts,
      refusedChannels: this.#refusedChannels,
      sends: {
        kernel: this.#kernel.stats.kernel,
        javascript: { ...this.#kernel.stats.javascript },
      },
    };
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
    return closeServer(this.#server).finally(() => this.#watchdog.close());
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
    if (this.store.has(id) || !(this.store instanceof CountedStore)) return;
    if (this.#registrationWaitMs > 0) await this.store.whenRegistered(id, this.#registrationWaitMs);
  }

  /** `GET /odb/v1/references` with `Upgrade: odb-references/1` opens a reference channel. */
  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const wanted = req.headers.upgrade?.toLowerCase() === referencesProtocol;
    if (req.url !== referencesPath || req.method !== 'GET' || !wanted) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    // A channel lives as long as its holder: only holders of the cluster key may open one, and
    // never more than a bounded number (they are outside the HTTP server's own limits).
    const proof = req.headers[channelProofHeader];
    if (!checkChannelProof(this.store.keyring, this.store.endpoint!, proof as string, Date.now())) {
      this.#refusedChannels++;
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (this.#channels.size >= this.#maxChannels) {
      this.#refusedChannels++;
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n',
      );
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
   * retain of a payload not registered yet waits for it (see CountedStore.retainReference). A
   * store that counts no references (header mode) refuses the line.
   */
  #applyReference(line: string): void {
    if (!(this.store instanceof CountedStore)) {
      throw new OdbError('ODB_ERR_PROTOCOL', 'this store counts no references');
    }
    const store = this.store;
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
    if (verb === 'retain') store.retainReference(id, token);
    else store.releaseReference(id, token);
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
    let endFetch: (() => void) | undefined;
    const transit = new TransitAccount(this.store);
    try {
      const descriptor = this.#authorise(text);
      const id = payloadIdHex(descriptor);
      await this.#known(id);
      endFetch = this.#admission.admit(id, peerAddress(req.socket.remoteAddress));
      entry = this.store.beginRead(id);
      this.#counts.fetches++;
      const plan = planFetch(descriptor, entry, req.headers.range);
      await entry.source.verify?.();
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
      };
      if (plan.length !== undefined) headers['content-length'] = plan.length;
      if (plan.contentRange) headers['content-range'] = plan.contentRange;
      res.writeHead(plan.contentRange ? 206 : 200, headers);
      const consumes = req.headers[releaseHeader] === releaseOnComplete && plan.wholeRange;
      const complete = await this.#stream(res, entry, plan.start, plan.end, consumes, transit);
      if (complete && consumes) this.store.release(id);
    } catch (err) {
      this.#fail(res, err);
    } finally {
      if (endFetch) {
        // The socket may still be writing chunks of the payload's memory (a source may yield
        // views of memory it frees when the store drops it): the read ends once it is not.
        // 'finish' follows the last write's callback; a destroyed socket cancels pending writes.
        await new Promise<void>((resolve) => finished(res, () => resolve()));
        transit.close();
        if (entry) this.store.endRead(entry);
        endFetch();
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
    transit: TransitAccount,
  ): Promise<boolean> {
    const kernel = await this.#kernel.send(res, entry.source, start, end);
    if (kernel) {
      this.#counts.fetchedBytes += kernel.bytes;
      return kernel.complete;
    }
    const onChunk = (position: number, bytes: number): void => {
      this.#counts.fetchedBytes += bytes;
      // An open payload is a single-consumer pipe: free what the consumer has taken.
      if (consumes && entry.open) entry.source.discardBefore?.(position);
    };
    const complete = await pumpSource(entry.source, start, end, res, onChunk, {
      allocate: transit.allocate,
      onFlushed: transit.flushed,
      viewWriteBytes: this.#viewWriteBytes,
    });
    if (complete) res.end();
    return complete;
  }

  #fail(res: ServerResponse, err: unknown): void {
    const code: OdbErrorCode = isOdbError(err) ? err.code : 'ODB_ERR_PAYLOAD_FAILED';
    const errors = this.#counts.errors;
    errors[code] = (errors[code] ?? 0) + 1;
    if (res.headersSent) {
      // Mid-body: the only honest signal is to cut the connection short of the announced length.
      this.#log.warn({ code, err: String(err) }, 'store fetch aborted mid-body');
      res.destroy(err instanceof Error ? err : new OdbError(code, String(err), { cause: err }));
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
