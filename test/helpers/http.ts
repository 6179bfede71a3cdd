import { createHash } from 'node:crypto';
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';

/** What a client saw of one response. */
export interface Received {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly bytes: number;
  readonly sha256: string;
  /** True when the body ended as framed (full Content-Length, or the final chunk). */
  readonly complete: boolean;
  /** The socket had served an earlier request (keep-alive). */
  readonly reusedSocket: boolean;
  readonly body?: Buffer;
}

/** Options of {@link get}. */
export interface GetOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly agent?: Agent | false;
  readonly keepBody?: boolean;
  /** Called with the first body chunk (e.g. to kill a tier mid-body). */
  readonly onFirstBytes?: () => void;
  /** Pause after the first chunk this long before reading on. */
  readonly stallMs?: number;
}

/** GETs `url` with node:http, hashing the body; never rejects for a cut body (see `complete`). */
export function get(url: string, options: GetOptions = {}): Promise<Received> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      agent: options.agent,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const hash = createHash('sha256');
      const parts: Buffer[] = [];
      let bytes = 0;
      let first = true;
      let done = false;
      const finish = (complete: boolean): void => {
        if (done) return;
        done = true;
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          bytes,
          sha256: hash.digest('hex'),
          complete,
          reusedSocket: req.reusedSocket,
          body: options.keepBody ? Buffer.concat(parts) : undefined,
        });
      };
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        if (options.keepBody) parts.push(chunk);
        if (first) {
          first = false;
          options.onFirstBytes?.();
          if (options.stallMs) {
            res.pause();
            setTimeout(() => res.resume(), options.stallMs);
          }
        }
      });
      res.on('end', () => finish(res.complete));
      res.on('error', () => finish(false));
      res.on('close', () => finish(res.complete && !res.errored));
    });
    req.end();
  });
}

/** Response headers that legitimately differ between two runs. */
export function comparableHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const { date: _date, 'keep-alive': _ka, ...rest } = headers;
  return rest;
}
