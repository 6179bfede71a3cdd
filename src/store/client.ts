/**
 * The fetch client of a front end: pooled connections (undici) to the buffer stores it may use,
 * fetches of a descriptor's range into a writable, releases and pings (docs/protocol.md §4). A
 * bounded number of connections per store, and a bounded wait for one (connection-slots.ts).
 */
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { observedConnector } from '../http-core/connector.js';
import { ResponseSink } from '../http-core/response-sink.js';
import { Pool } from 'undici';
import { OdbError, type OdbErrorCode } from '../core/errors.js';
import { ConnectionSlots, type SlotStats } from './connection-slots.js';
import { classify, refusalError } from './fetch-errors.js';
import { SplicedFetcher, type SpliceTarget } from './spliced-fetch.js';
import type { TransferEngine } from '../native/transfer.js';
import { descriptorToText, type Descriptor } from '../protocol/descriptor.js';
import {
  errorHeader,
  payloadPath,
  pingPath,
  type StorePing,
  releaseHeader,
  releaseOnComplete,
} from '../protocol/store-rpc.js';

/**
 * Default fetches at once per store (`--store-connections`). Every delivery of a large response
 * holds one for as long as its client takes, so this is sized for hundreds of slow clients, as
 * nginx and HAProxy leave per-upstream connections unlimited by default under a global cap; stay
 * at or below the stores' per-peer fetch limit (1024).
 */
export const defaultStoreConnections = 256;
/** Default `--store-queue-timeout`: how long a fetch waits for one of those connections. */
export const defaultStoreQueueTimeoutMs = 5000;
/** Connections beyond the fetch slots, for releases and pings: never stuck behind paused fetches. */
const controlConnections = 4;

/** Options of a {@link StoreClient}. */
export interface StoreClientOptions {
  /**
   * Budget for connecting and receiving the store's response head once the fetch has a
   * connection slot, in ms. Default 5000.
   */
  readonly fetchTimeoutMs?: number;
  /** Longest pause between body bytes before the fetch fails, in ms. Default 30 000. */
  readonly idleTimeoutMs?: number;
  /** Fetches at once per store endpoint, each on its own connection. Default 256. */
  readonly connectionsPerStore?: number;
  /**
   * How long a fetch waits for a slot when all are taken before failing with
   * ODB_ERR_STORE_QUEUE_TIMEOUT, in ms. Default 5000.
   */
  readonly queueTimeoutMs?: number;
  /** Requests in flight per connection (HTTP/1.1 pipelining). Default 1. */
  readonly pipelining?: number;
  /** Called with every new store connection (for byte counters). */
  readonly onSocket?: (socket: Socket) => void;
}

/** Counters of a fetch client; exposed as metrics. */
export interface StoreClientStats extends SlotStats {
  fetches: number;
  fetchedBytes: number;
  failures: Partial<Record<OdbErrorCode, number>>;
}

/**
 * Where a fetch delivers. `start` is called once the store has accepted the fetch (so errors
 * before it can still be answered cleanly); the returned writable receives every byte and is
 * ended on success or destroyed on failure.
 */
export interface FetchTarget {
  start(length: number | undefined): Writable;
}

/** Fetch options. */
export interface FetchOptions {
  /** Ask the store to release the payload once every byte was sent. */
  readonly releaseOnComplete?: boolean;
  /** Aborts the fetch (e.g. the client went away). */
  readonly signal?: AbortSignal;
}

/**
 * The pooled fetch client: one undici pool per store endpoint, bytes streamed straight into the
 * destination with backpressure, never a whole payload in memory.
 */
export class StoreClient {
  readonly stats: StoreClientStats = {
    fetches: 0,
    fetchedBytes: 0,
    failures: {},
    queued: 0,
    queueTimeouts: 0,
  };
  readonly #fetchTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #connections: number;
  readonly #queueTimeoutMs: number;
  readonly #pipelining: number;
  readonly #onSocket: ((socket: Socket) => void) | undefined;
  readonly #pools = new Map<string, Pool>();
  readonly #slots = new Map<string, ConnectionSlots>();
  #spliced: SplicedFetcher | undefined;

  constructor(options: StoreClientOptions = {}) {
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 5000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.#connections = options.connectionsPerStore ?? defaultStoreConnections;
    this.#queueTimeoutMs = options.queueTimeoutMs ?? defaultStoreQueueTimeoutMs;
    this.#pipelining = options.pipelining ?? 1;
    this.#onSocket = options.onSocket;
  }

  /** Fetches holding a slot, and fetches waiting for one, over all stores. */
  get slotUse(): { taken: number; waiting: number } {
    let taken = 0;
    let waiting = 0;
    for (const slots of this.#slots.values()) {
      taken += slots.taken;
      waiting += slots.waiting;
    }
    return { taken, waiting };
  }

  #slotsOf(endpoint: string): ConnectionSlots {
    let slots = this.#slots.get(endpoint);
    if (!slots) {
      slots = new ConnectionSlots(this.#connections, this.stats);
      this.#slots.set(endpoint, slots);
    }
    return slots;
  }

  #pool(endpoint: string): Pool {
    let pool = this.#pools.get(endpoint);
    if (!pool) {
      pool = new Pool(`http://${endpoint}`, {
        connections: this.#connections + controlConnections,
        pipelining: this.#pipelining,
        connect: observedConnector(this.#fetchTimeoutMs, this.#onSocket),
        headersTimeout: this.#fetchTimeoutMs,
        bodyTimeout: this.#idleTimeoutMs,
        keepAliveTimeout: 30_000,
      });
      this.#pools.set(endpoint, pool);
    }
    return pool;
  }

  /**
   * Streams the descriptor's range into `target`. Resolves with the byte count once the target
   * was ended; rejects with an OdbError (the target, if started, was destroyed).
   */
  async fetch(
    descriptor: Descriptor,
    target: FetchTarget,
    options: FetchOptions = {},
  ): Promise<number> {
    return this.#onSlot(descriptor, options, () => this.#fetchOnSlot(descriptor, target, options));
  }

  /** Runs `fetch` holding one of the store's connection slots, counted as a fetch. */
  async #onSlot(
    descriptor: Descriptor,
    options: FetchOptions,
    fetch: () => Promise<number>,
  ): Promise<number> {
    this.stats.fetches++;
    let release: () => void;
    try {
      release = await this.#slotsOf(descriptor.endpoint).acquire(
        this.#queueTimeoutMs,
        options.signal,
      );
    } catch (err) {
      throw this.#failure(err as OdbError);
    }
    try {
      return await fetch();
    } finally {
      release();
    }
  }

  /** A fetch that holds a connection slot. */
  #fetchOnSlot(
    descriptor: Descriptor,
    target: FetchTarget,
    options: FetchOptions,
  ): Promise<number> {
    const expected = descriptor.open ? undefined : descriptor.length;
    return new Promise<number>((resolve, reject) => {
      let refusal: Promise<OdbError> | undefined;
      let timedOut: 'connecting' | 'waiting' | undefined;
      // One budget for connecting and the response head; the body has its own idle timeout.
      const timer = setTimeout(() => {
        timedOut = sink.requestSent ? 'waiting' : 'connecting';
        const code = timedOut === 'waiting' ? 'ODB_ERR_FETCH_TIMEOUT' : 'ODB_ERR_STORE_UNREACHABLE';
        sink.abort(new OdbError(code, `no response head within ${this.#fetchTimeoutMs} ms`));
      }, this.#fetchTimeoutMs);
      // The signal's reason is the cause (a DestinationClosedError: the client went away).
      const onCallerAbort = (): void =>
        sink.abort(
          new OdbError('ODB_ERR_FETCH_ABORTED', 'fetch aborted by its caller', {
            cause: options.signal?.reason,
          }),
        );
      options.signal?.addEventListener('abort', onCallerAbort, { once: true });
      const sink: ResponseSink = new ResponseSink({
        onHead: (statusCode, headers) => {
          clearTimeout(timer);
          if (statusCode !== 200) {
            const body = collect();
            refusal = body.text.then((text) =>
              refusalError(statusCode, headers[errorHeader], text),
            );
            return body.writable;
          }
          const length = headers['content-length'];
          if (expected !== undefined && Number(length) !== expected) {
            throw new OdbError(
              'ODB_ERR_PROTOCOL',
              `store announced ${length} bytes, expected ${expected}`,
            );
          }
          return target.start(expected);
        },
        onDone: (err, bytes) => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onCallerAbort);
          if (err) {
            reject(this.#failure(classify(err, timedOut)));
            return;
          }
          if (refusal) {
            refusal.then((e) => reject(this.#failure(e)), reject);
            return;
          }
          this.stats.fetchedBytes += bytes;
          resolve(bytes);
        },
      });
      this.#pool(descriptor.endpoint).dispatch(
        {
          path: payloadPath(descriptorToText(descriptor)),
          method: 'GET',
          headers: options.releaseOnComplete ? { [releaseHeader]: releaseOnComplete } : {},
        },
        sink,
      );
      // Aborted while the slot was being handed over: the listener came too late to hear it.
      if (options.signal?.aborted) onCallerAbort();
    });
  }

  /**
   * Like {@link fetch}, but the body does not cross JavaScript: the kernel splices it from a
   * store connection of the fetcher's own into the target's socket (spliced-fetch.ts). Same
   * connection slots, counters and error codes. `descriptor` must not be open.
   */
  async fetchSpliced(
    descriptor: Descriptor,
    target: SpliceTarget,
    engine: TransferEngine,
    options: FetchOptions = {},
  ): Promise<number> {
    const spliced = (this.#spliced ??= new SplicedFetcher({
      engine,
      fetchTimeoutMs: this.#fetchTimeoutMs,
      idleTimeoutMs: this.#idleTimeoutMs,
      // A slow client is the send watchdog's to judge (it counts the bytes lent to the engine):
      // a full send buffer drained in small steps shows no progress for long stretches.
      destinationIdleMs: 0,
      onSocket: this.#onSocket,
    }));
    return this.#onSlot(descriptor, options, async () => {
      try {
        const bytes = await spliced.fetch(descriptor, target, options.releaseOnComplete ?? false);
        this.stats.fetchedBytes += bytes;
        return bytes;
      } catch (err) {
        throw this.#failure(err as OdbError);
      }
    });
  }

  /** Releases the payload now. Resolves whether or not the store still held it. */
  async release(descriptor: Descriptor): Promise<void> {
    const { statusCode, headers, body } = await this.#pool(descriptor.endpoint).request({
      path: payloadPath(descriptorToText(descriptor)),
      method: 'DELETE',
    });
    const text = await body.text();
    if (statusCode !== 204) throw refusalError(statusCode, headers[errorHeader], text);
  }

  /**
   * The store's ping answer (liveness and counters); with a `challenge`, also the store's signing
   * key id and its proof (protocol/key-proof.ts).
   */
  async ping(endpoint: string, challenge?: string): Promise<StorePing> {
    const path = challenge === undefined ? pingPath : `${pingPath}?challenge=${challenge}`;
    const { statusCode, body } = await this.#pool(endpoint).request({ path, method: 'GET' });
    if (statusCode !== 200) {
      await body.dump();
      throw new OdbError('ODB_ERR_PROTOCOL', `ping answered ${statusCode}`);
    }
    return (await body.json()) as StorePing;
  }

  /** Closes every pooled connection. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    this.#spliced?.close();
    await Promise.all(pools.map((p) => p.destroy()));
  }

  #failure(err: OdbError): OdbError {
    this.stats.failures[err.code] = (this.stats.failures[err.code] ?? 0) + 1;
    return err;
  }
}

/** A writable that collects a small error body as text. */
function collect(): { writable: Writable; text: Promise<string> } {
  const parts: Buffer[] = [];
  let size = 0;
  let done: (text: string) => void = () => {};
  const text = new Promise<string>((resolve) => (done = resolve));
  const writable = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (size < 4096) parts.push(chunk);
      size += chunk.length;
      cb();
    },
    final(cb) {
      done(Buffer.concat(parts).toString('utf8'));
      cb();
    },
    destroy(err, cb) {
      done(Buffer.concat(parts).toString('utf8'));
      cb(err);
    },
  });
  return { writable, text };
}
