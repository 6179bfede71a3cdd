/**
 * Header-mode names (docs/protocol.md §2). Every ODB header starts with `odb-`; a front end strips
 * all of them from client requests, so a client can never inject one.
 */
export const odbHeaderPrefix = 'odb-';

/** Request: the front end's offer; value is the protocol version. Removing it vetoes the shortcut. */
export const odbAcceptHeader = 'odb-accept';
/** Response: the descriptor (text form) of the body the back end kept in its buffer store. */
export const odbPayloadHeader = 'odb-payload';
/** Response: the original Content-Length; absent when the original body was chunked. */
export const odbContentLengthHeader = 'odb-content-length';
/** Response: the original Cache-Control, replaced by `no-store` on the descriptor response. */
export const odbCacheControlHeader = 'odb-cache-control';

/**
 * Response: HMAC binding `odb-content-length` and `odb-cache-control` (present or absent) to the
 * descriptor (see head-signature.ts). The front end restores nothing it does not cover.
 */
export const odbHeadMacHeader = 'odb-head-mac';

/** Response headers that only exist on descriptor responses. */
export const descriptorResponseHeaders: readonly string[] = [
  odbPayloadHeader,
  odbContentLengthHeader,
  odbCacheControlHeader,
  odbHeadMacHeader,
];

/** Header-mode protocol version offered in `odb-accept`. */
export const headerModeVersion = '1';

/** Cache-Control a back end puts on descriptor responses: they expire, so nobody may cache them. */
export const descriptorResponseCacheControl = 'no-store';

/** True for any header name in the ODB namespace (names are lower case, as Node gives them). */
export function isOdbHeader(lowerCaseName: string): boolean {
  return lowerCaseName.startsWith(odbHeaderPrefix);
}
