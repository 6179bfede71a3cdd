/**
 * The shape of a header-mode descriptor response, in one place for both sides: what the back end
 * changes when it replaces a body by a descriptor, and how the front end restores the original.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { OdbError } from '../core/errors.js';
import type { ClusterKey, Keyring } from '../core/keys/keyring.js';
import { descriptorToText, type Descriptor } from '../protocol/descriptor.js';
import { signHead, verifyHead, type RestoredHead } from '../protocol/head-signature.js';
import {
  descriptorResponseCacheControl,
  odbCacheControlHeader,
  odbContentLengthHeader,
  odbHeadMacHeader,
  odbPayloadHeader,
  isOdbHeader,
} from '../protocol/http-headers.js';
import { endToEndHeaders } from '../http-core/hop-by-hop.js';
import type { ResponseHeaders } from '../http-core/response-sink.js';

/**
 * Turns the headers set on `res` into those of a descriptor response: empty body, the descriptor,
 * the original length (when the original had one), a Cache-Control nobody will cache, and the
 * head signature over what the front end will restore. `key` signed `descriptor`.
 */
export function setDescriptorHeaders(
  res: ServerResponse,
  descriptor: Descriptor,
  originalContentLength: number | undefined,
  key: ClusterKey,
): void {
  const cacheControl = res.getHeader('cache-control');
  const head: RestoredHead = {
    contentLength: originalContentLength === undefined ? undefined : String(originalContentLength),
    cacheControl:
      cacheControl === undefined
        ? undefined
        : Array.isArray(cacheControl)
          ? cacheControl.join(', ')
          : String(cacheControl),
  };
  res.removeHeader('transfer-encoding');
  res.setHeader(odbPayloadHeader, descriptorToText(descriptor));
  if (head.contentLength !== undefined) res.setHeader(odbContentLengthHeader, head.contentLength);
  if (head.cacheControl !== undefined) res.setHeader(odbCacheControlHeader, head.cacheControl);
  res.setHeader(odbHeadMacHeader, signHead(descriptor, head, key));
  res.setHeader('cache-control', descriptorResponseCacheControl);
  res.setHeader('content-length', '0');
}

const canonicalDecimal = /^(?:0|[1-9][0-9]{0,15})$/;

/** A header that must occur at most once, as text. */
function single(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) throw new OdbError('ODB_ERR_BAD_HEAD', `several ${name} headers`);
  return value;
}

/**
 * The headers the client must see for a verified descriptor response: hop-by-hop and ODB headers
 * removed, Content-Length and Cache-Control restored. Framing comes from signed data only: the
 * head signature must cover what is restored, `odb-content-length` must be the canonical decimal
 * of the descriptor's length, and the client's Content-Length is written from the descriptor.
 * Throws ODB_ERR_BAD_HEAD otherwise.
 */
export function restoreOriginalHeaders(
  headers: ResponseHeaders,
  descriptor: Descriptor,
  keyring: Keyring,
): OutgoingHttpHeaders {
  const head: RestoredHead = {
    contentLength: single(headers, odbContentLengthHeader),
    cacheControl: single(headers, odbCacheControlHeader),
  };
  verifyHead(descriptor, head, single(headers, odbHeadMacHeader), keyring);
  const restored: OutgoingHttpHeaders = endToEndHeaders(
    headers,
    (name) => isOdbHeader(name) || name === 'content-length' || name === 'cache-control',
  );
  if (head.contentLength !== undefined) {
    if (
      descriptor.open ||
      !canonicalDecimal.test(head.contentLength) ||
      Number(head.contentLength) !== descriptor.length
    ) {
      throw new OdbError(
        'ODB_ERR_BAD_HEAD',
        `odb-content-length ${JSON.stringify(head.contentLength.slice(0, 40))} does not match the descriptor`,
      );
    }
    restored['content-length'] = String(descriptor.length);
  }
  if (head.cacheControl !== undefined) restored['cache-control'] = head.cacheControl;
  return restored;
}
