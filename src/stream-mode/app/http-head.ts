/**
 * Protocol heads travel real: when a large write starts with an HTTP/1.x start line, its head
 * (up to the blank line) is sent as R bytes, so that a tier parsing heads never touches a lazy
 * buffer (the thesis's Table 4.1: otherwise each parsed head costs a page fault).
 */
const maxHeadBytes = 64 * 1024;
const requestLine = /^[A-Z]{3,10} \S+ HTTP\/1\.[01]\r\n/;

/** Length of the HTTP head `chunk` starts with, or 0 when it starts with none. */
export function httpHeadLength(chunk: Buffer): number {
  const first = chunk[0];
  if (first === undefined || first < 0x41 || first > 0x5a) return 0; // not an upper-case letter
  const start = chunk.toString('latin1', 0, Math.min(chunk.length, 64));
  if (!start.startsWith('HTTP/1.') && !requestLine.test(start)) return 0;
  const end = chunk.indexOf('\r\n\r\n', 0, 'latin1');
  return end === -1 || end > maxHeadBytes ? 0 : end + 4;
}

/**
 * The body length an HTTP head announces (its Content-Length), or undefined when it announces
 * none or frames its body otherwise (Transfer-Encoding). Used only to send what was gathered as
 * soon as a message is complete: a wrong answer delays bytes, it never changes them.
 */
export function httpBodyLength(head: Buffer): number | undefined {
  const text = head.toString('latin1');
  if (/\r\ntransfer-encoding:/i.test(text)) return undefined;
  const match = /\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n/i.exec(text);
  return match ? Number(match[1]) : undefined;
}
