/**
 * What to answer for a GET/HEAD of a representation of known size: 200, 206 for a satisfiable
 * Range, 304 for a matching validator, 416 for an unsatisfiable Range (RFC 9110 §13, §14).
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { contentRange, parseByteRange } from '../protocol/byte-range.js';

/** What the server knows about the representation. */
export interface Representation {
  readonly size: number;
  readonly etag: string;
  readonly lastModified?: Date;
  readonly contentType: string;
}

/** Status, headers and the byte range to send (length 0: no body). */
export interface ResponsePlan {
  readonly statusCode: 200 | 206 | 304 | 416;
  readonly headers: OutgoingHttpHeaders;
  readonly start: number;
  readonly length: number;
}

function etagMatches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const weakless = (tag: string): string => tag.trim().replace(/^W\//, '');
  return header.split(',').some((tag) => weakless(tag) === weakless(etag));
}

/** Plans the response to `req` for `rep`. */
export function planResponse(req: IncomingMessage, rep: Representation): ResponsePlan {
  const validators: OutgoingHttpHeaders = { etag: rep.etag };
  if (rep.lastModified) validators['last-modified'] = rep.lastModified.toUTCString();
  const ifNoneMatch = req.headers['if-none-match'];
  const ifModifiedSince = req.headers['if-modified-since'];
  const notModified =
    ifNoneMatch !== undefined
      ? etagMatches(ifNoneMatch, rep.etag)
      : ifModifiedSince !== undefined &&
        rep.lastModified !== undefined &&
        Math.floor(rep.lastModified.getTime() / 1000) <= Date.parse(ifModifiedSince) / 1000;
  if (notModified) return { statusCode: 304, headers: validators, start: 0, length: 0 };

  const headers: OutgoingHttpHeaders = {
    ...validators,
    'content-type': rep.contentType,
    'accept-ranges': 'bytes',
  };
  const ifRange = req.headers['if-range'];
  const rangeApplies = ifRange === undefined || ifRange === rep.etag;
  const range = rangeApplies ? parseByteRange(req.headers.range, rep.size) : undefined;
  if (range === 'unsatisfiable') {
    return {
      statusCode: 416,
      headers: { ...headers, 'content-range': `bytes */${rep.size}` },
      start: 0,
      length: 0,
    };
  }
  if (range === undefined) return { statusCode: 200, headers, start: 0, length: rep.size };
  return {
    statusCode: 206,
    headers: { ...headers, 'content-range': contentRange(range, rep.size) },
    start: range.start,
    length: range.end - range.start + 1,
  };
}
