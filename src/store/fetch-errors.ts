/**
 * How fetch clients of a buffer store name what went wrong (the stable codes of docs/protocol.md
 * §4), whatever HTTP client they use.
 */
import { OdbError, errorCodes, isOdbError, type OdbErrorCode } from '../core/errors.js';

const unreachableCodes = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);
// undici's own timeouts (StoreClient); node:http callers report theirs through `timedOut`.
const timeoutCodes = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * Maps a transport error to the stable code a caller can act on. `timedOut`: the caller's own
 * deadline fired while connecting or while waiting for the store.
 */
export function classify(err: unknown, timedOut: 'connecting' | 'waiting' | undefined): OdbError {
  // A closed destination is why the fetch ended, not what the caller is told: an aborted fetch
  // (or a timeout) with it as the cause.
  if (isOdbError(err) && err.code !== 'ODB_ERR_DESTINATION_CLOSED') return err;
  const code = (err as { code?: string }).code ?? '';
  const detail = err instanceof Error ? err.message : String(err);
  if (timedOut === 'connecting') {
    return new OdbError('ODB_ERR_STORE_UNREACHABLE', detail, { cause: err });
  }
  if (timedOut === 'waiting' || timeoutCodes.has(code)) {
    return new OdbError('ODB_ERR_FETCH_TIMEOUT', detail, { cause: err });
  }
  if (unreachableCodes.has(code))
    return new OdbError('ODB_ERR_STORE_UNREACHABLE', detail, { cause: err });
  return new OdbError('ODB_ERR_FETCH_ABORTED', detail, { cause: err });
}

/** The error for a store's refusal: its stable code from `odb-error`, its message from the body. */
export function refusalError(
  status: number,
  codeHeader: string | string[] | undefined,
  body: string,
): OdbError {
  const code =
    typeof codeHeader === 'string' && codeHeader in errorCodes
      ? (codeHeader as OdbErrorCode)
      : undefined;
  let message = body;
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? body;
  } catch {
    // Not JSON: keep the raw text (a proxy in the way may have answered).
  }
  return new OdbError(
    code ?? 'ODB_ERR_PROTOCOL',
    `store answered ${status}: ${message.slice(0, 200)}`,
  );
}
