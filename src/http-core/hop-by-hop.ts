/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy must not
 * forward them. Plus any header the Connection header names.
 */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

type HeaderValue = string | string[] | number | undefined;

/**
 * Copies `headers` without hop-by-hop headers and without the names `drop` rejects.
 * Names are expected in lower case (as Node and undici give them).
 */
export function endToEndHeaders<T extends HeaderValue>(
  headers: Readonly<Record<string, T>>,
  drop?: (name: string) => boolean,
): Record<string, T> {
  const listed = headers.connection;
  const named =
    typeof listed === 'string' && listed !== 'keep-alive' && listed !== 'close'
      ? new Set(listed.split(',').map((t) => t.trim().toLowerCase()))
      : undefined;
  const out: Record<string, T> = {};
  for (const name in headers) {
    if (hopByHop.has(name) || named?.has(name) || drop?.(name)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
