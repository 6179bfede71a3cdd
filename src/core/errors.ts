/**
 * The one registry of ODB error codes. A code is stable: it never changes meaning and is never
 * reused; messages may change. Every code is documented in `docs/errors.md` (a unit test checks).
 */
export const errorCodes = {
  ODB_ERR_BAD_DESCRIPTOR: 'descriptor is malformed',
  ODB_ERR_BAD_MAC: 'descriptor MAC does not verify',
  ODB_ERR_UNKNOWN_KEY: 'descriptor is signed with a key id this process does not hold',
  ODB_ERR_EXPIRED: 'descriptor or payload has expired',
  ODB_ERR_FOREIGN_ENDPOINT: 'descriptor names a buffer store this process is not allowed to use',
  ODB_ERR_NOT_FOUND: 'buffer store holds no payload with this id',
  ODB_ERR_OUT_OF_RANGE: 'requested range lies outside the payload',
  ODB_ERR_BUSY: 'buffer store is busy',
  ODB_ERR_STORE_FULL: 'buffer store budget is exhausted',
  ODB_ERR_STORE_UNREACHABLE: 'buffer store cannot be reached',
  ODB_ERR_FETCH_TIMEOUT: 'fetch from the buffer store timed out',
  ODB_ERR_FETCH_ABORTED: 'fetch from the buffer store ended before all bytes arrived',
  ODB_ERR_STORE_QUEUE_TIMEOUT: 'no connection to the buffer store became free in time',
  ODB_ERR_SEND_TIMEOUT: 'a peer took the bytes sent to it too slowly; its connection was cut',
  ODB_ERR_SOURCE_CHANGED: 'the file behind a payload changed after it was registered',
  ODB_ERR_PAYLOAD_FAILED: 'the producer of a payload failed before writing all of it',
  ODB_ERR_PROTOCOL: 'a peer broke the ODB protocol',
  ODB_ERR_BAD_HEAD: 'a descriptor response has missing, unsigned or altered ODB headers',
  ODB_ERR_BAD_FRAME: 'stream-mode frame is malformed',
  ODB_ERR_BAD_CRC: 'stream-mode frame header CRC-8 does not match',
  ODB_ERR_FRAME_TOO_LARGE: 'stream-mode frame exceeds the length limit for its type',
  ODB_ERR_UPSTREAM_BUSY: 'no upstream connection became free in time',
  ODB_ERR_INVALID_OPTION: 'an option or configuration value is invalid',
  ODB_ERR_KEY_FILE: 'the cluster key file is missing or invalid',
  ODB_ERR_LISTEN: 'a listen address cannot be bound',
} as const;

/** A stable ODB error code. */
export type OdbErrorCode = keyof typeof errorCodes;

/** An error carrying a stable ODB code. */
export class OdbError extends Error {
  readonly code: OdbErrorCode;
  /** The specific part of the message (after the code's meaning), if any. */
  readonly detail: string | undefined;

  constructor(code: OdbErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${errorCodes[code]}: ${detail}` : errorCodes[code], options);
    this.name = 'OdbError';
    this.code = code;
    this.detail = detail;
  }
}

/** True when `err` is an OdbError, optionally with the given code. */
export function isOdbError(err: unknown, code?: OdbErrorCode): err is OdbError {
  return err instanceof OdbError && (code === undefined || err.code === code);
}
