/**
 * The head signature of a header-mode descriptor response (docs/protocol.md §2): an HMAC that
 * binds the ODB headers the front end restores for the client (the original Content-Length and
 * Cache-Control) to the descriptor they came with. Intermediaries relay these headers unsigned;
 * without the signature a tampering one could set the client's framing (response splitting) or
 * caching. Pure functions, no I/O.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { OdbError } from '../core/errors.js';
import type { ClusterKey, Keyring } from '../core/keys/keyring.js';
import { macBytes, type Descriptor } from './descriptor.js';

/** The restorable headers of a descriptor response, as text; undefined when absent. */
export interface RestoredHead {
  readonly contentLength: string | undefined;
  readonly cacheControl: string | undefined;
}

const context = Buffer.from('odb-head/1\0', 'latin1');

/**
 * The signed bytes: a context string, the descriptor's MAC (which covers every descriptor field),
 * then each restorable header in a fixed order as `0x00` (absent) or `0x01`, a 32-bit length and
 * its latin1 bytes, so that no two heads encode alike.
 */
function signedBytes(descriptor: Descriptor, head: RestoredHead): Buffer {
  const parts: Buffer[] = [context, descriptor.bytes.subarray(descriptor.bytes.length - macBytes)];
  for (const value of [head.contentLength, head.cacheControl]) {
    if (value === undefined) {
      parts.push(Buffer.of(0));
      continue;
    }
    const bytes = Buffer.from(value, 'latin1');
    const prefix = Buffer.alloc(5);
    prefix[0] = 1;
    prefix.writeUInt32BE(bytes.length, 1);
    parts.push(prefix, bytes);
  }
  return Buffer.concat(parts);
}

function mac(key: ClusterKey, bytes: Buffer): Buffer {
  return createHmac('sha256', key.secret).update(bytes).digest();
}

/** The `odb-head-mac` value for `head`, signed with the key that signed `descriptor`. */
export function signHead(descriptor: Descriptor, head: RestoredHead, key: ClusterKey): string {
  return mac(key, signedBytes(descriptor, head)).toString('base64url');
}

/**
 * Checks `text` (the `odb-head-mac` value; undefined when absent) against `head` and the verified
 * `descriptor`. Throws ODB_ERR_BAD_HEAD when it is missing, malformed or does not match.
 */
export function verifyHead(
  descriptor: Descriptor,
  head: RestoredHead,
  text: string | undefined,
  keyring: Keyring,
): void {
  if (text === undefined) throw new OdbError('ODB_ERR_BAD_HEAD', 'no odb-head-mac');
  const key = keyring.get(descriptor.keyId);
  const given = /^[A-Za-z0-9_-]{43}$/.test(text) ? Buffer.from(text, 'base64url') : undefined;
  if (!key || given?.length !== macBytes) {
    throw new OdbError('ODB_ERR_BAD_HEAD', 'odb-head-mac is malformed');
  }
  if (!timingSafeEqual(mac(key, signedBytes(descriptor, head)), given)) {
    throw new OdbError('ODB_ERR_BAD_HEAD', 'odb-head-mac does not match the restored headers');
  }
}
