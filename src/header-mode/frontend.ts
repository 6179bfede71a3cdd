/**
 * Header mode, front-end side: offer the shortcut upstream, recognise a descriptor response,
 * verify it, fetch the bytes from the owner's buffer store and stream them to the client with the
 * original headers. Usable from any Node proxy (see examples/).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { OdbError, isOdbError, type OdbErrorCode } from '../core/errors.js';
import type { Keyring } from '../core/keys/keyring.js';
import { descriptorFromText, verifyDescriptor, type Descriptor } from '../protocol/descriptor.js';
import {
  descriptorResponseHeaders,
  headerModeVersion,
  isOdbHeader,
  odbAcceptHeader,
  odbPayloadHeader,
} from '../protocol/http-headers.js';
import { checkKeyProof, type KeyCheck } from '../protocol/key-proof.js';
import { StoreClient, type StoreClientOptions } from '../store/client.js';
import { restoreOriginalHeaders } from './descriptor-response.js';
import { DestinationClosedError, type ResponseHeaders } from '../http-core/response-sink.js';
import { lendableFd } from '../core/net/socket-handoff.js';
import { connectionClosedSignal } from '../http-core/connection-closed.js';
import { transferEngine, type TransferEngine } from '../native/transfer.js';

/** Options of an {@link OdbGateway}. */
export interface OdbGatewayOptions {
  /** Verifies descriptors. */
  readonly keyring: Keyring;
  /**
   * Store endpoints (`host:port`) descriptors may name; at least one. A descriptor naming any
   * other endpoint is refused before anything connects to it, so a leaked key (or a careless
   * configuration) cannot point the front end at other services, or at itself.
   */
  readonly allowedStores: readonly string[];
  /** Options of the pooled fetch client (ignored when `client` is given). */
  readonly fetch?: StoreClientOptions;
  /** A fetch client to share. */
  readonly client?: StoreClient;
  /** Clock, for tests. */
  readonly now?: () => number;
  /**
   * Deliver bodies by splice(2), the kernel moving them from the store connection into the
   * client's socket, when the native addon is there and the client's socket is plain TCP
   * (default: unless ODB_NATIVE=off). Otherwise, and for TLS clients, JavaScript copies them.
   */
  readonly native?: boolean;
}

/** Why a delivery took the JavaScript path rather than the kernel's. */
export type JavaScriptDeliveryReason =
  'unavailable' | 'disabled' | 'tls' | 'not-lendable' | 'open-length' | 'pipelined';

/** A verified descriptor response, ready to deliver. */
export interface Shortcut {
  readonly descriptor: Descriptor;
  readonly statusCode: number;
  readonly statusMessage: string | undefined;
  /** The headers the client gets: the original ones, ODB headers removed. */
  readonly headers: OutgoingHttpHeaders;
}

/** What {@link OdbGateway.checkStoreKeys} learns of one store. */
export type StoreKeyCheck = KeyCheck | 'unreachable';

/** Counters of a gateway; exposed as metrics. */
export interface OdbGatewayStats {
  shortcuts: number;
  /** Deliveries the client abandoned (closed its connection); not failures. */
  clientAborts: number;
  /** Payload bytes delivered from buffer stores. */
  deliveredBytes: number;
  /** Descriptor responses refused or failed, by code. */
  failures: Partial<Record<OdbErrorCode, number>>;
  /** Deliveries whose body the kernel spliced, and those JavaScript copied (by reason). */
  deliveries: { kernel: number; javascript: Partial<Record<JavaScriptDeliveryReason, number>> };
}

/** What went wrong with a shortcut, and whether the client could still be told with a 502. */
export interface DeliveryFailure {
  readonly error: OdbError;
  /** True when a 502 was sent; false when the client's response had started and was aborted. */
  readonly answered502: boolean;
  /** The client went away (closed its connection) before the body was delivered. */
  readonly clientGone: boolean;
  /**
   * The store answered and is working (it refused, or the client went away): a release may be
   * sent to it. False when the store could not be reached or failed mid-body: nothing more is
   * sent to an endpoint that failed.
   */
  readonly storeAnswered: boolean;
}

/** Options of {@link OdbGateway.deliver}. */
export interface DeliverOptions {
  /** Aborts the fetch (e.g. the client went away). */
  readonly signal?: AbortSignal;
  /**
   * Called when the delivery fails before the client's response head: return true to answer the
   * client yourself (for instance, re-send an idempotent request without the offer); otherwise
   * the client gets a 502.
   */
  readonly beforeHead?: (error: OdbError) => boolean;
}

/** Codes only a store's own answer produces (not the transport): the store is up and talking. */
const storeAnswerCodes: ReadonlySet<OdbErrorCode> = new Set<OdbErrorCode>([
  'ODB_ERR_BAD_DESCRIPTOR',
  'ODB_ERR_BAD_MAC',
  'ODB_ERR_UNKNOWN_KEY',
  'ODB_ERR_OUT_OF_RANGE',
  'ODB_ERR_BUSY',
  'ODB_ERR_SOURCE_CHANGED',
  'ODB_ERR_PAYLOAD_FAILED',
]);

/** The front-end helper. */
export class OdbGateway {
  readonly client: StoreClient;
  readonly stats: OdbGatewayStats = {
    shortcuts: 0,
    clientAborts: 0,
    deliveredBytes: 0,
    failures: {},
    deliveries: { kernel: 0, javascript: {} },
  };
  readonly #keyring: Keyring;
  readonly #allowed: ReadonlySet<string>;
  readonly #now: () => number;
  readonly #native: boolean;
  readonly #logged = new Set<string>();
  #log: ((reason: string, why: string | undefined) => void) | undefined;

  constructor(options: OdbGatewayOptions) {
    this.#keyring = options.keyring;
    if (options.allowedStores.length === 0) {
      throw new OdbError(
        'ODB_ERR_INVALID_OPTION',
        'allowedStores: name at least one store endpoint (host:port) descriptors may use',
      );
    }
    this.#allowed = new Set(options.allowedStores);
    this.client = options.client ?? new StoreClient(options.fetch);
    this.#now = options.now ?? Date.now;
    this.#native = options.native ?? process.env.ODB_NATIVE !== 'off';
  }

  /** Where the first delivery of each JavaScript-path reason is reported (once per reason). */
  onJavaScriptPath(log: (reason: string, why: string | undefined) => void): void {
    this.#log = log;
  }

  /**
   * Adds the offer to upstream request headers, after removing every ODB header the client sent
   * (a client must never inject a descriptor or an offer). Mutates and returns `headers`.
   */
  offer<T extends IncomingHttpHeaders | Record<string, string | string[] | undefined>>(
    headers: T,
  ): T {
    stripOdbHeaders(headers);
    (headers as Record<string, string>)[odbAcceptHeader] = headerModeVersion;
    return headers;
  }

  /**
   * Looks at an upstream response head. Undefined: an ordinary response (relay it as is).
   * Otherwise the verified shortcut; throws an OdbError when the descriptor must not be used
   * (answer 502): it does not verify, names a store not allowed, comes on a response that has no
   * body (HEAD, 1xx, 204, 205, 304), or its ODB headers were altered, left unsigned or stripped of
   * the descriptor on the way.
   */
  inspect(
    method: string | undefined,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): Shortcut | undefined {
    try {
      const descriptor = this.#descriptorOf(headers);
      if (!descriptor) return undefined;
      if (method === 'HEAD')
        throw new OdbError('ODB_ERR_PROTOCOL', 'descriptor in a HEAD response');
      if (!responseHasBody(statusCode))
        throw new OdbError('ODB_ERR_PROTOCOL', `descriptor in a ${statusCode} response`);
      verifyDescriptor(descriptor, this.#keyring, this.#now());
      return {
        descriptor,
        statusCode,
        statusMessage,
        headers: restoreOriginalHeaders(headers, descriptor, this.#keyring),
      };
    } catch (err) {
      throw this.#count(err);
    }
  }

  /**
   * The descriptor of a response head, decoded but not verified, when its endpoint is allowed;
   * undefined when the head carries no ODB response header at all. A refused response's payload
   * can then still be released in its store (see {@link refusedDescriptor}).
   */
  #descriptorOf(headers: ResponseHeaders): Descriptor | undefined {
    const text = headers[odbPayloadHeader];
    if (text === undefined) {
      const stray = descriptorResponseHeaders.find((name) => headers[name] !== undefined);
      if (stray === undefined) return undefined;
      // An intermediary that drops long or unknown headers does this: never a clean empty body.
      throw new OdbError('ODB_ERR_BAD_HEAD', `${stray} without odb-payload: descriptor stripped`);
    }
    if (typeof text !== 'string')
      throw new OdbError('ODB_ERR_PROTOCOL', 'several odb-payload headers');
    const descriptor = descriptorFromText(text);
    if (!this.#allowed.has(descriptor.endpoint)) {
      throw new OdbError('ODB_ERR_FOREIGN_ENDPOINT', descriptor.endpoint);
    }
    return descriptor;
  }

  /**
   * The descriptor of a refused response head if releasing it is safe: it decodes and names an
   * allowed store (the store verifies the MAC itself). Undefined otherwise.
   */
  refusedDescriptor(headers: ResponseHeaders): Descriptor | undefined {
    try {
      return this.#descriptorOf(headers);
    } catch {
      return undefined;
    }
  }

  /**
   * Streams the shortcut's payload to `res` (head included) and releases it in the store.
   * Resolves with undefined on success, or with what failed: before the head, a 502 was sent
   * (unless `options.beforeHead` took the failure over); after it, `res` was destroyed so the
   * client sees a short body, never a padded or clean one.
   */
  async deliver(
    shortcut: Shortcut,
    res: ServerResponse,
    options: DeliverOptions = {},
  ): Promise<DeliveryFailure | undefined> {
    this.stats.shortcuts++;
    // The client's connection closing ends the fetch, even for a response that has no socket yet
    // (queued behind a pipelined one), whose own 'close' would never come.
    const connection = res.req?.socket;
    const closed = connection ? connectionClosedSignal(connection) : undefined;
    const signal =
      options.signal && closed
        ? AbortSignal.any([options.signal, closed])
        : (options.signal ?? closed);
    try {
      const kernel = this.#kernelPath(shortcut, res);
      if (kernel) {
        const bytes = await this.client.fetchSpliced(
          shortcut.descriptor,
          {
            start: () => {
              // Destroyed meanwhile: its descriptor's number may name another socket by now.
              const socket = res.socket;
              if (res.destroyed || !socket || lendableFd(socket) !== kernel.fd) return undefined;
              const { statusCode, statusMessage, headers } = shortcut;
              if (statusMessage) res.writeHead(statusCode, statusMessage, headers);
              else res.writeHead(statusCode, headers);
              res.flushHeaders();
              return { socket, fd: kernel.fd, write: (bytes) => res.write(bytes) };
            },
          },
          kernel.engine,
          { releaseOnComplete: true, signal },
        );
        res.end();
        this.stats.deliveredBytes += bytes;
        return undefined;
      }
      const bytes = await this.client.fetch(
        shortcut.descriptor,
        {
          start: () => {
            const { statusCode, statusMessage, headers } = shortcut;
            if (statusMessage) res.writeHead(statusCode, statusMessage, headers);
            else res.writeHead(statusCode, headers);
            return res;
          },
        },
        { releaseOnComplete: true, signal },
      );
      this.stats.deliveredBytes += bytes;
      return undefined;
    } catch (err) {
      const clientGone = isOdbError(err) && err.cause instanceof DestinationClosedError;
      // The client going away is not the store's failure: counted apart, and the store is fine.
      const error = clientGone ? (err as OdbError) : this.#count(err);
      if (clientGone) this.stats.clientAborts++;
      const storeAnswered = clientGone || storeAnswerCodes.has(error.code);
      if (res.headersSent) {
        if (!res.destroyed) res.destroy(error);
        return { error, answered502: false, clientGone, storeAnswered };
      }
      if (options.beforeHead?.(error)) {
        return { error, answered502: false, clientGone, storeAnswered };
      }
      answerBadGateway(res);
      return { error, answered502: true, clientGone, storeAnswered };
    }
  }

  /**
   * Asks every allowed store which key it signs with and checks its proof against this gateway's
   * keys: 'ok', 'unknown-key' (this process lacks the store's signing key id), 'mismatch' (same id,
   * different secret), or 'unreachable'. With any answer but 'ok', every descriptor that store
   * issues will be refused.
   */
  async checkStoreKeys(): Promise<Record<string, StoreKeyCheck>> {
    const results: Record<string, StoreKeyCheck> = {};
    await Promise.all(
      [...this.#allowed].map(async (endpoint) => {
        const challenge = randomBytes(16).toString('base64url');
        try {
          const ping = await this.client.ping(endpoint, challenge);
          results[endpoint] = checkKeyProof(this.#keyring, challenge, ping.keyId, ping.proof);
        } catch {
          results[endpoint] = 'unreachable';
        }
      }),
    );
    return results;
  }

  /** Closes pooled store connections. */
  close(): Promise<void> {
    return this.client.close();
  }

  /** The engine and the client's descriptor when the kernel can deliver; else counts why not. */
  #kernelPath(
    shortcut: Shortcut,
    res: ServerResponse,
  ): { engine: TransferEngine; fd: number } | undefined {
    const javascript = (reason: JavaScriptDeliveryReason, why?: string): undefined => {
      const counts = this.stats.deliveries.javascript;
      counts[reason] = (counts[reason] ?? 0) + 1;
      if (!this.#logged.has(reason)) {
        this.#logged.add(reason);
        this.#log?.(reason, why);
      }
      return undefined;
    };
    if (!this.#native) return javascript('disabled');
    const loaded = transferEngine(true);
    if ('reason' in loaded) return javascript('unavailable', loaded.reason);
    if (shortcut.descriptor.open) return javascript('open-length');
    // A response to a pipelined request has no socket until the ones before it are done.
    if (!res.socket) return javascript('pipelined');
    const fd = lendableFd(res.socket);
    if (fd === 'tls') return javascript('tls');
    if (fd === 'not-lendable') return javascript('not-lendable');
    this.stats.deliveries.kernel++;
    return { engine: loaded.engine, fd };
  }

  #count(err: unknown): OdbError {
    const error = isOdbError(err)
      ? err
      : new OdbError('ODB_ERR_PROTOCOL', String(err), { cause: err });
    this.stats.failures[error.code] = (this.stats.failures[error.code] ?? 0) + 1;
    return error;
  }
}

/** True when a response with this status can have a body (RFC 9110 §6.4.1). */
export function responseHasBody(statusCode: number): boolean {
  return statusCode >= 200 && statusCode !== 204 && statusCode !== 205 && statusCode !== 304;
}

/** Removes every `odb-*` header (in place). */
export function stripOdbHeaders(headers: Record<string, unknown>): void {
  for (const name of Object.keys(headers)) {
    if (isOdbHeader(name.toLowerCase())) delete headers[name];
  }
}

/** A plain 502 for the client: the reason goes to the log, not to the client. */
export function answerBadGateway(res: ServerResponse): void {
  if (res.headersSent) return;
  res.writeHead(502, { 'content-type': 'text/plain', 'content-length': '12' }).end('Bad Gateway\n');
}
