/**
 * Key agreement check between a front end and a buffer store (docs/protocol.md §4, ping): the
 * front end sends a random challenge, the store answers with the id of the key it signs
 * descriptors with and an HMAC of the challenge under that key. The front end then knows, before
 * any client request, whether it can verify that store's descriptors. Nothing secret is revealed:
 * the proof is a MAC of a fresh random value. Pure functions, no I/O.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ClusterKey, Keyring } from '../core/keys/keyring.js';

const context = Buffer.from('odb-key-proof/1\0', 'latin1');
/** Challenge text: base64url of 16 to 64 bytes. */
const challengePattern = /^[A-Za-z0-9_-]{22,86}$/;

/** True when `text` is a well-formed challenge. */
export function isKeyChallenge(text: string): boolean {
  return challengePattern.test(text);
}

/** The store's proof that it holds `key`, for a challenge `text`. */
export function keyProof(key: ClusterKey, challenge: string): string {
  return createHmac('sha256', key.secret).update(context).update(challenge).digest('base64url');
}

/** What a front end learns from a store's key proof. */
export type KeyCheck = 'ok' | 'unknown-key' | 'mismatch';

/** Checks a store's answer (`keyId`, `proof`) to `challenge` against this process's keys. */
export function checkKeyProof(
  keyring: Keyring,
  challenge: string,
  keyId: unknown,
  proof: unknown,
): KeyCheck {
  const key = typeof keyId === 'number' ? keyring.get(keyId) : undefined;
  if (!key) return 'unknown-key';
  const expected = Buffer.from(keyProof(key, challenge));
  const given = Buffer.from(typeof proof === 'string' ? proof : '');
  return given.length === expected.length && timingSafeEqual(given, expected) ? 'ok' : 'mismatch';
}

/** Header of a reference-channel upgrade: `<key id>.<time ms>.<proof>` (see {@link channelProof}). */
export const channelProofHeader = 'odb-channel-proof';
/** How far the time in a channel proof may be from the store's clock. */
export const channelProofSkewMs = 60_000;

function channelMac(key: ClusterKey, endpoint: string, at: number): string {
  return createHmac('sha256', key.secret)
    .update(`odb-channel-proof/1\0${endpoint}\0${at}`)
    .digest('base64url');
}

/**
 * The header value by which a holder shows that it holds the cluster key when it opens a
 * reference channel to the store at `endpoint` (as the descriptors name it), at time `now`.
 */
export function channelProof(key: ClusterKey, endpoint: string, now: number): string {
  return `${key.id}.${now}.${channelMac(key, endpoint, now)}`;
}

/** True when `value` is a fresh proof for `endpoint` under a key of `keyring`. */
export function checkChannelProof(
  keyring: Keyring,
  endpoint: string,
  value: string | undefined,
  now: number,
): boolean {
  const match = /^(\d{1,5})\.(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(value ?? '');
  if (!match) return false;
  const key = keyring.get(Number(match[1]));
  const at = Number(match[2]);
  if (!key || Math.abs(now - at) > channelProofSkewMs) return false;
  const expected = Buffer.from(channelMac(key, endpoint, at));
  const given = Buffer.from(match[3]!);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
