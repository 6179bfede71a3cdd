/**
 * The shape of a header-mode descriptor response, in one place for both sides: what the back end
 * changes when it replaces a body by a descriptor, and how the front end restores the original.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { descriptorToText, type Descriptor } from '../protocol/descriptor.js';
import {
  descriptorResponseCacheControl,
  odbCacheControlHeader,
  odbContentLengthHeader,
  odbPayloadHeader,
  isOdbHeader,
} from '../protocol/http-headers.js';
import { endToEndHeaders } from './hop-by-hop.js';
import type { ResponseHeaders } from './response-sink.js';

/**
 * Turns the headers set on `res` into those of a descriptor response: empty body, the descriptor,
 * the original length (when the original had one) and a Cache-Control nobody will cache.
 */
export function setDescriptorHeaders(
  res: ServerResponse,
  descriptor: Descriptor,
  originalContentLength: number | undefined,
): void {
  const cacheControl = res.getHeader('cache-control');
  res.removeHeader('transfer-encoding');
  res.setHeader(odbPayloadHeader, descriptorToText(descriptor));
  if (originalContentLength !== undefined) {
    res.setHeader(odbContentLengthHeader, String(originalContentLength));
  }
  if (cacheControl !== undefined) res.setHeader(odbCacheControlHeader, cacheControl);
  res.setHeader('cache-control', descriptorResponseCacheControl);
  res.setHeader('content-length', '0');
}

/**
 * The headers the client must see for a descriptor response: hop-by-hop and ODB headers removed,
 * Content-Length and Cache-Control restored.
 */
export function restoreOriginalHeaders(headers: ResponseHeaders): OutgoingHttpHeaders {
  const restored: OutgoingHttpHeaders = endToEndHeaders(
    headers,
    (name) => isOdbHeader(name) || name === 'content-length' || name === 'cache-control',
  );
  const length = headers[odbContentLengthHeader];
  if (typeof length === 'string') restored['content-length'] = length;
  const cacheControl = headers[odbCacheControlHeader];
  if (cacheControl !== undefined) {
    restored['cache-control'] = Array.isArray(cacheControl)
      ? cacheControl.join(', ')
      : cacheControl;
  }
  return restored;
}
