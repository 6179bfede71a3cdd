/**
 * The request-target of an HTTP/1.1 request line (RFC 9112 §3.2), as Node's parser hands it over
 * in `req.url`: whatever the parser accepted, which is far more than `new URL` does. Every tier
 * classifies it here first, so that no odd target can throw inside a handler or reach an upstream
 * client library that refuses it.
 */

/** What a request-target is, once classified. */
export type RequestTarget =
  /** origin-form (`/path?query`), or absolute-form reduced to it; `authority` from the latter. */
  | {
      readonly form: 'origin';
      readonly path: string;
      readonly pathname: string;
      readonly query: string;
      readonly authority?: string;
    }
  /** asterisk-form: `OPTIONS *` asks about the server itself. */
  | { readonly form: 'asterisk' }
  /** Anything else: answer 400. */
  | { readonly form: 'invalid'; readonly reason: string };

/** Longest request-target any tier accepts (nginx's large_client_header_buffers is 8 KiB). */
export const maxRequestTargetLength = 8192;

// What may appear in a path and query (RFC 3986 pchar, "/", "?", plus the bytes Node's lenient
// parser lets through and that upstream clients still accept: obs-text, "\", "|", "^", "`", "{", "}").
// Controls, space and DEL never pass.
const targetChars = /^[\x21-\x7e\x80-\xff]*$/;
const absoluteForm = /^https?:\/\/([^/?#]*)([^#]*)$/i;
const authorityPattern = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{0,5})?$/;

/** Classifies `req.url` for `method`. Pure; never throws. */
export function parseRequestTarget(
  method: string | undefined,
  url: string | undefined,
): RequestTarget {
  const target = url ?? '';
  if (target.length === 0) return invalid('empty request-target');
  if (target.length > maxRequestTargetLength) return invalid('request-target too long');
  if (!targetChars.test(target)) return invalid('request-target has controls or spaces');
  if (target === '*') {
    return method === 'OPTIONS' ? { form: 'asterisk' } : invalid('* is only for OPTIONS');
  }
  if (target.startsWith('/')) return origin(target, undefined);
  const absolute = absoluteForm.exec(target);
  if (absolute) {
    const authority = absolute[1]!.replace(/^[^@]*@/, '');
    if (!authorityPattern.test(authority)) return invalid('bad authority in absolute-form');
    return origin(absolute[2] || '/', authority);
  }
  return invalid('request-target is neither origin-form nor absolute-form');
}

function origin(path: string, authority: string | undefined): RequestTarget {
  if (!path.startsWith('/')) path = `/${path}`; // "http://h?q" has an empty path
  if (path.includes('#')) return invalid('fragment in request-target');
  const q = path.indexOf('?');
  const pathname = q === -1 ? path : path.slice(0, q);
  const query = q === -1 ? '' : path.slice(q + 1);
  return authority === undefined
    ? { form: 'origin', path, pathname, query }
    : { form: 'origin', path, pathname, query, authority };
}

function invalid(reason: string): RequestTarget {
  return { form: 'invalid', reason };
}
