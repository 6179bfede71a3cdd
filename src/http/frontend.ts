/**
 * Header mode, front-end side: offer the shortcut upstream, recognise a descriptor response,
 * verify it, fetch the bytes from the owner's buffer store and stream them to the client with the
 * original headers. Usable from any Node proxy (see examples/).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { OdbError, isOdbError, type OdbErrorCode } from '../errors.js';
import type { Keyring } from '../keys/keyring.js';
import { descriptorFromText, verifyDescriptor, type Descriptor } from '../protocol/descriptor.js';
import {
  headerModeVersion,
  isOdbHeader,
  odbAcceptHeader,
  odbContentLengthHeader,
  odbPayloadHeader,
} from '../protocol/http-headers.js';
import { StoreClient, type StoreClientOptions } from '../rab/client.js';
import { restoreOriginalHeaders } from './descriptor-response.js';
import type { ResponseHeaders } from './response-sink.js';

/** Options of an {@link OdbGateway}. */
export interface OdbGatewayOptions {
  /** Verifies descriptors. */
  readonly keyring: Keyring;
  /**
   * Store endpoints (`host:port`) descriptors may name. Empty or absent: any endpoint, as long as
   * the descriptor verifies; set it so that a leaked key cannot point the front end elsewhere.
   */
  readonly allowedStores?: readonly string[];
  /** Options of the pooled fetch client (ignored when `client` is given). */
  readonly fetch?: StoreClientOptions;
  /** A fetch client to share. */
  readonly client?: StoreClient;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** A verified descriptor response, ready to deliver. */
export interface Shortcut {
  readonly descriptor: Descriptor;
  readonly statusCode: number;
  readonly statusMessage: string | undefined;
  /** The headers the client gets: the original ones, ODB headers removed. */
  readonly headers: OutgoingHttpHeaders;
}

/** Counters of a gateway; exposed as metrics. */
export interface OdbGatewayStats {
  shortcuts: number;
  /** Payload bytes delivered from buffer stores. */
  deliveredBytes: number;
  /** Descriptor responses refused or failed, by code. */
  failures: Partial<Record<OdbErrorCode, number>>;
}

/** What went wrong with a shortcut, and whether the client could still be told with a 502. */
export interface DeliveryFailure {
  readonly error: OdbError;
  /** True when a 502 was sent; false when the client's response had started and was aborted. */
  readonly answered502: boolean;
}

/** The front-end helper. */
export class OdbGateway {
  readonly client: StoreClient;
  readonly stats: OdbGatewayStats = { shortcuts: 0, deliveredBytes: 0, failures: {} };
  readonly #keyring: Keyring;
  readonly #allowed: ReadonlySet<string> | undefined;
  readonly #now: () => number;

  constructor(options: OdbGatewayOptions) {
    this.#keyring = options.keyring;
    this.#allowed = options.allowedStores?.length ? new Set(options.allowedStores) : undefined;
    this.client = options.client ?? new StoreClient(options.fetch);
    this.#now = options.now ?? Date.now;
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
   * (answer 502).
   */
  inspect(
    method: string | undefined,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): Shortcut | undefined {
    const text = headers[odbPayloadHeader];
    if (text === undefined) return undefined;
    try {
      if (typeof text !== 'string')
        throw new OdbError('ODB_ERR_PROTOCOL', 'several odb-payload headers');
      if (method === 'HEAD')
        throw new OdbError('ODB_ERR_PROTOCOL', 'descriptor in a HEAD response');
      const descriptor = descriptorFromText(text);
      verifyDescriptor(descriptor, this.#keyring, this.#now());
      if (this.#allowed && !this.#allowed.has(descriptor.endpoint)) {
        throw new OdbError('ODB_ERR_FOREIGN_ENDPOINT', descriptor.endpoint);
      }
      const announced = headers[odbContentLengthHeader];
      if (announced !== undefined && (descriptor.open || Number(announced) !== descriptor.length)) {
        throw new OdbError(
          'ODB_ERR_PROTOCOL',
          `odb-content-length ${announced} does not match the descriptor`,
        );
      }
      return { descriptor, statusCode, statusMessage, headers: restoreOriginalHeaders(headers) };
    } catch (err) {
      throw this.#count(err);
    }
  }

  /**
   * Streams the shortcut's payload to `res` (head included) and releases it in the store.
   * Resolves with undefined on success, or with what failed: before the head, a 502 was sent;
   * after it, `res` was destroyed so the client sees a short body, never a padded or clean one.
   */
  async deliver(
    shortcut: Shortcut,
    res: ServerResponse,
    signal?: AbortSignal,
  ): Promise<DeliveryFailure | undefined> {
    this.stats.shortcuts++;
    try {
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
      const error = this.#count(err);
      if (res.headersSent) {
        if (!res.destroyed) res.destroy(error);
        return { error, answered502: false };
      }
      answerBadGateway(res);
      return { error, answered502: true };
    }
  }

  /** Closes pooled store connections. */
  close(): Promise<void> {
    return this.client.close();
  }

  #count(err: unknown): OdbError {
    const error = isOdbError(err)
      ? err
      : new OdbError('ODB_ERR_PROTOCOL', String(err), { cause: err });
    this.stats.failures[error.code] = (this.stats.failures[error.code] ?? 0) + 1;
    return error;
  }
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
