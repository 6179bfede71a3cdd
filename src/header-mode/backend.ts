/**
 * Header mode, back-end side: answer a request that offers the shortcut (`odb-accept`) with the
 * original status and headers, an empty body and a descriptor of the body kept in the buffer store.
 */
import type {
  IncomingMessage,
  OutgoingHttpHeaders,
  RequestListener,
  ServerResponse,
} from 'node:http';
import { FilePayload } from '../store/payloads/file.js';
import type { PayloadSource } from '../store/payloads/source.js';
import { pumpSource } from '../store/pump.js';
import type { BufferStore } from '../store/store.js';
import { headerModeVersion, odbAcceptHeader } from '../protocol/http-headers.js';
import { setDescriptorHeaders } from './descriptor-response.js';
import { captureResponse } from './response-capture.js';
import { MemoryPayload, defaultBlockBytes } from '../store/payloads/memory.js';

/**
 * Default smallest body sent as a descriptor. Below it the extra fetch costs the chain more CPU
 * than relaying the bytes saves (measured: docs/architecture.md, "Default threshold: 64 KiB").
 */
export const defaultThresholdBytes = 64 * 1024;
/** Unread bytes an open (chunked) payload may hold before its producer is paused. */
const openPayloadWindowBytes = 1024 * 1024;

/** Options of an {@link OdbBackend}. */
export interface OdbBackendOptions {
  /** The store that keeps payloads; its server must be listening (it names the endpoint). */
  readonly store: BufferStore;
  /** Smallest body sent as a descriptor, in bytes. Default {@link defaultThresholdBytes}. */
  readonly thresholdBytes?: number;
}

/** Counters of a back end; exposed as metrics. */
export interface OdbBackendStats {
  /** Responses answered with a descriptor, and their body bytes. */
  virtualResponses: number;
  virtualBytes: number;
  /** Responses whose body went real through ODB code (below threshold, no offer, store full). */
  realResponses: number;
  realBytes: number;
}

/** Status and headers of a response sent with {@link OdbBackend.sendPayload}. */
export interface PayloadHead {
  readonly statusCode?: number;
  readonly headers?: OutgoingHttpHeaders;
}

/**
 * The back-end helper. Use {@link sendPayload}/{@link sendFile} where you hold the bytes, or wrap
 * any `(req, res)` handler with {@link handler} to capture what it writes.
 */
export class OdbBackend {
  readonly store: BufferStore;
  readonly thresholdBytes: number;
  readonly stats: OdbBackendStats = {
    virtualResponses: 0,
    virtualBytes: 0,
    realResponses: 0,
    realBytes: 0,
  };

  constructor(options: OdbBackendOptions) {
    this.store = options.store;
    this.thresholdBytes = options.thresholdBytes ?? defaultThresholdBytes;
  }

  /** True when the request offers the shortcut and its response can have a body. */
  offered(req: IncomingMessage): boolean {
    return req.headers[odbAcceptHeader] === headerModeVersion && req.method !== 'HEAD';
  }

  /**
   * Sends `source` (of known size) as the body: as a descriptor when offered, large enough and the
   * store has room (charging `memoryBytes` of its budget), else streamed real. Resolves when done.
   */
  async sendPayload(
    req: IncomingMessage,
    res: ServerResponse,
    source: PayloadSource,
    head: PayloadHead = {},
    memoryBytes = 0,
  ): Promise<void> {
    const size = applyHead(res, head, source);
    if (this.#wantsVirtual(req, res.statusCode, size)) {
      const descriptor = this.store.register(source, memoryBytes);
      if (descriptor) {
        setDescriptorHeaders(res, descriptor, size, this.store.keyring.signing);
        this.#countVirtual(size);
        res.end();
        return;
      }
    }
    this.stats.realResponses++;
    await streamPayload(req, res, source, (bytes) => (this.stats.realBytes += bytes));
  }

  /** Sends `[start, start+length)` of a file (whole file by default) without copying it to memory. */
  async sendFile(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    head: PayloadHead = {},
    range?: { start: number; length: number },
  ): Promise<void> {
    const payload = await FilePayload.fromPath(path, range?.start, range?.length);
    await this.sendPayload(req, res, payload, head);
  }

  /** Wraps a request handler so that every response it writes may go as a descriptor. */
  handler(handle: RequestListener): RequestListener {
    return (req, res) => {
      this.capture(req, res);
      handle(req, res);
    };
  }

  /**
   * Captures what is written to `res` from now on. Bodies below the threshold (and responses to
   * requests without the offer) go out exactly as written.
   */
  capture(req: IncomingMessage, res: ServerResponse): void {
    if (!this.offered(req)) return;
    captureResponse(res, {
      thresholdBytes: this.thresholdBytes,
      begin: (size, originalContentLength) => this.#beginCaptured(res, size, originalContentLength),
      finished: (payload) => this.#countVirtual(payload.written),
    });
  }

  /** Registers a payload for a captured response and sends its descriptor head, or undefined. */
  #beginCaptured(
    res: ServerResponse,
    size: number | undefined,
    originalContentLength: number | undefined,
  ): MemoryPayload | undefined {
    if (!this.#eligibleStatus(res.statusCode)) return undefined;
    const payload =
      size === undefined
        ? new MemoryPayload({ highWaterBytes: openPayloadWindowBytes })
        : new MemoryPayload({ expectedSize: size });
    // An open payload holds its window, plus the partly read and partly written blocks.
    const charge = size ?? openPayloadWindowBytes + 2 * defaultBlockBytes;
    const descriptor = this.store.register(payload, charge);
    if (!descriptor) return undefined;
    setDescriptorHeaders(res, descriptor, originalContentLength, this.store.keyring.signing);
    return payload;
  }

  #wantsVirtual(req: IncomingMessage, statusCode: number, size: number): boolean {
    return size >= this.thresholdBytes && this.offered(req) && this.#eligibleStatus(statusCode);
  }

  #eligibleStatus(statusCode: number): boolean {
    return statusCode >= 200 && statusCode !== 204 && statusCode !== 304;
  }

  #countVirtual(bytes: number): void {
    this.stats.virtualResponses++;
    this.stats.virtualBytes += bytes;
  }
}

/** Sets status, headers and Content-Length (the source's size) on `res`; returns the size. */
export function applyHead(res: ServerResponse, head: PayloadHead, source: PayloadSource): number {
  const size = source.size ?? 0;
  res.statusCode = head.statusCode ?? 200;
  for (const [name, value] of Object.entries(head.headers ?? {})) {
    if (value !== undefined) res.setHeader(name, value);
  }
  res.setHeader('content-length', String(size));
  return size;
}

/**
 * Sends `source` real as the body of `res`, whose head is set. Resolves when done; if the source
 * fails after the head went out, the connection is cut (the client sees a short body).
 */
export async function streamPayload(
  req: IncomingMessage,
  res: ServerResponse,
  source: PayloadSource,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  const size = source.size ?? 0;
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  try {
    await source.verify?.();
    if (await pumpSource(source, 0, size, res, onBytes && ((_p, bytes) => onBytes(bytes))))
      res.end();
  } catch (err) {
    if (res.headersSent) {
      res.destroy(err as Error);
      return;
    }
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    res.writeHead(500, { 'content-length': 0 }).end();
  }
}
