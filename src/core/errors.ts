/**
 * The one registry of ODB error codes, in the manner of Node core's `E('ERR_…', message)`: each
 * code is registered once, with its meaning (the start of every message of an error with that
 * code) and, where it has one, the HTTP status of an answer carrying it. A code is stable: it
 * never changes meaning and is never reused; messages may change. Every code is documented in
 * `docs/errors.md` (a unit test checks the page against this registry, statuses included).
 */

/** What the registry holds of one code. */
interface CodeSpec<S extends number | undefined = number | undefined> {
  readonly message: string;
  /** The status of an HTTP answer carrying the code (a store's refusal, a relay's answer). */
  readonly status: S;
}

/** Registers a code: its meaning and, where it has one, its HTTP status. */
const E = <S extends number | undefined = undefined>(message: string, status?: S): CodeSpec<S> => ({
  message,
  status: status as S,
});

const registry = {
  ODB_ERR_BAD_DESCRIPTOR: E('descriptor is malformed', 400),
  ODB_ERR_BAD_MAC: E('descriptor MAC does not verify', 403),
  ODB_ERR_UNKNOWN_KEY: E('descriptor is signed with a key id this process does not hold', 403),
  ODB_ERR_EXPIRED: E('descriptor or payload has expired', 410),
  ODB_ERR_FOREIGN_ENDPOINT: E('descriptor names a buffer store this process is not allowed to use'),
  ODB_ERR_NOT_FOUND: E('buffer store holds no payload with this id', 404),
  ODB_ERR_OUT_OF_RANGE: E('requested range lies outside the payload', 416),
  ODB_ERR_BUSY: E('buffer store is busy', 503),
  ODB_ERR_STORE_FULL: E('buffer store budget is exhausted'),
  ODB_ERR_STORE_UNREACHABLE: E('buffer store cannot be reached'),
  ODB_ERR_FETCH_TIMEOUT: E('fetch from the buffer store timed out'),
  ODB_ERR_FETCH_ABORTED: E('fetch from the buffer store ended before all bytes arrived'),
  ODB_ERR_STORE_QUEUE_TIMEOUT: E('no connection to the buffer store became free in time'),
  ODB_ERR_SEND_TIMEOUT: E('a peer took the bytes sent to it too slowly; its connection was cut'),
  ODB_ERR_SOURCE_CHANGED: E('the file behind a payload changed after it was registered', 409),
  ODB_ERR_PAYLOAD_FAILED: E('the producer of a payload failed before writing all of it', 500),
  ODB_ERR_PROTOCOL: E('a peer broke the ODB protocol'),
  ODB_ERR_BAD_HEAD: E('a descriptor response has missing, unsigned or altered ODB headers'),
  ODB_ERR_BAD_FRAME: E('stream-mode frame is malformed'),
  ODB_ERR_BAD_CRC: E('stream-mode frame header CRC-8 does not match'),
  ODB_ERR_FRAME_TOO_LARGE: E('stream-mode frame exceeds the length limit for its type'),
  ODB_ERR_UPSTREAM_BUSY: E('no upstream connection became free in time', 503),
  ODB_ERR_DESTINATION_CLOSED: E('destination closed before the response body ended'),
  ODB_ERR_INVALID_OPTION: E('an option or configuration value is invalid'),
  ODB_ERR_KEY_FILE: E('the cluster key file is missing or invalid'),
  ODB_ERR_TLS_FILE: E('a TLS certificate or private key file is missing or invalid'),
  ODB_ERR_LISTEN: E('a listen address cannot be bound'),
  ODB_ERR_UNSUPPORTED_RUNTIME: E(
    'an internal of this Node.js runtime is missing or not as expected',
  ),
  ODB_ERR_DEMO_PROCESS: E(
    'a process the demo started failed to get ready, exited, or could not be measured',
  ),
} as const satisfies Record<`ODB_ERR_${string}`, CodeSpec>;

/** A stable ODB error code. */
export type OdbErrorCode = keyof typeof registry;

/** Each code's meaning: code → the message of the registry. */
export const errorCodes: { readonly [C in OdbErrorCode]: string } = Object.freeze(
  Object.fromEntries(Object.entries(registry).map(([code, spec]) => [code, spec.message])) as {
    [C in OdbErrorCode]: string;
  },
);

/** The HTTP status of an answer carrying `code`, or undefined when the code has none. */
export function httpStatusOf<C extends OdbErrorCode>(code: C): (typeof registry)[C]['status'] {
  return registry[code].status;
}

/**
 * The brand of every OdbError, a global symbol: another copy of this package (a dependency's
 * own, say) brands its errors with the same symbol, so {@link isOdbError} knows them where
 * `instanceof` does not (as undici does with `Symbol.for('undici.error.UND_ERR')`).
 */
const kOdbError = Symbol.for('odb.error');

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
// On the prototype: every instance (of a subclass too) carries it, and logs do not show it.
Object.defineProperty(OdbError.prototype, kOdbError, { value: true });

/**
 * True when `err` is an OdbError, optionally with the given code: an error carrying the brand
 * and a code, so errors of another copy of this package count too.
 */
export function isOdbError(err: unknown, code?: OdbErrorCode): err is OdbError {
  if (typeof err !== 'object' || err === null) return false;
  const branded = err as { [kOdbError]?: unknown; code?: unknown };
  if (branded[kOdbError] !== true || typeof branded.code !== 'string') return false;
  return code === undefined || branded.code === code;
}
