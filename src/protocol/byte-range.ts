/**
 * `Range: bytes=…` parsing (RFC 9110 §14.1.2) for one range. Several ranges are answered with the
 * whole body, which the RFC allows. Pure.
 */

/** A resolved inclusive byte range. */
export interface ByteRange {
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

/**
 * Resolves a Range header against a representation of `size` bytes:
 * a range, `'unsatisfiable'` (answer 416), or `undefined` (ignore the header, send everything).
 */
export function parseByteRange(
  header: string | undefined,
  size: number,
): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=\s*(\d*)-(\d*)\s*$/.exec(header);
  if (!match) return undefined; // other units, several ranges or malformed: ignore
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start)) return 'unsatisfiable';
  if (start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return undefined; // invalid range-spec: the header is ignored (RFC 9110)
  return { start, end };
}

/** `Content-Range` value for a range of a `size`-byte representation. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}
