/**
 * Descriptors: small signed references to payload bytes held by a buffer store.
 * Layout and test vectors: docs/protocol.md §1. Pure functions, no I/O.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { OdbError } from '../core/errors.js';
import type { ClusterKey, Keyring } from '../core/keys/keyring.js';

export const descriptorVersion = 1;
/** Flag bit: the payload's length was not known when the descriptor was signed. */
export const flagOpen = 0x01;
export const payloadIdBytes = 16;
export const macBytes = 32;
const fixedBytes = 5 + payloadIdBytes + 4 * 8 + macBytes; // everything but the endpoint
export const maxEndpointBytes = 255;
export const maxDescriptorBytes = fixedBytes + maxEndpointBytes;
/** Longest base64url text a valid descriptor can have. */
export const maxDescriptorTextLength = Math.ceil((maxDescriptorBytes * 4) / 3);

/** The signed fields of a descriptor. */
export interface DescriptorFields {
  /** Buffer-store endpoint, `host:port` (IPv6 host in brackets). */
  readonly endpoint: string;
  /** Random payload id (16 bytes). */
  readonly payloadId: Buffer;
  /** Start of the referenced range within the payload. */
  readonly offset: number;
  /** Length of the referenced range; 0 for an open descriptor. */
  readonly length: number;
  /** Size of the whole payload; 0 for an open descriptor. */
  readonly totalSize: number;
  /** Expiry, milliseconds since the Unix epoch. */
  readonly expiresAt: number;
  /** Id of the cluster key that signed it. */
  readonly keyId: number;
  /** True when the payload's length was unknown at signing: the range runs to the payload's end. */
  readonly open: boolean;
}

/** A descriptor with its exact encoding (the MAC is its last 32 bytes). */
export interface Descriptor extends DescriptorFields {
  readonly bytes: Buffer;
}

const endpointPattern = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

function bad(detail: string): OdbError {
  return new OdbError('ODB_ERR_BAD_DESCRIPTOR', detail);
}

/** Checks the field rules shared by the encoder and the decoder. */
function checkFields(f: DescriptorFields): void {
  const port = endpointPattern.exec(f.endpoint)?.[1];
  if (port === undefined || Number(port) < 1 || Number(port) > 65535) {
    throw bad(`endpoint ${JSON.stringify(f.endpoint)} is not host:port`);
  }
  if (Buffer.byteLength(f.endpoint) > maxEndpointBytes) throw bad('endpoint too long');
  if (f.payloadId.length !== payloadIdBytes)
    throw bad(`payload id must be ${payloadIdBytes} bytes`);
  for (const name of ['offset', 'length', 'totalSize', 'expiresAt'] as const) {
    const v = f[name];
    if (!Number.isSafeInteger(v) || v < 0) throw bad(`${name} must be a non-negative safe integer`);
  }
  if (!Number.isInteger(f.keyId) || f.keyId < 0 || f.keyId > 0xffff)
    throw bad('key id out of range');
  if (f.open) {
    if (f.length !== 0 || f.totalSize !== 0) throw bad('an open descriptor has length and total 0');
  } else if (f.offset + f.length > f.totalSize) {
    throw bad('range exceeds the payload size');
  }
}

function mac(key: ClusterKey, signed: Buffer): Buffer {
  return createHmac('sha256', key.secret).update(signed).digest();
}

/** Encodes and signs `fields` with `key` (whose id must match `fields.keyId`). */
export function signDescriptor(
  fields: Omit<DescriptorFields, 'keyId'>,
  key: ClusterKey,
): Descriptor {
  const f: DescriptorFields = { ...fields, keyId: key.id };
  checkFields(f);
  const endpointLength = Buffer.byteLength(f.endpoint);
  const bytes = Buffer.allocUnsafe(fixedBytes + endpointLength);
  let at = bytes.writeUInt8(descriptorVersion, 0);
  at = bytes.writeUInt8(f.open ? flagOpen : 0, at);
  at = bytes.writeUInt16BE(f.keyId, at);
  at = bytes.writeUInt8(endpointLength, at);
  at += bytes.write(f.endpoint, at, 'latin1');
  at += f.payloadId.copy(bytes, at);
  for (const v of [f.offset, f.length, f.totalSize, f.expiresAt]) {
    at = bytes.writeBigUInt64BE(BigInt(v), at);
  }
  mac(key, bytes.subarray(0, at)).copy(bytes, at);
  return { ...f, payloadId: Buffer.from(f.payloadId), bytes };
}

function readSafeU64(buf: Buffer, at: number, name: string): number {
  const v = buf.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} exceeds 2^53-1`);
  return Number(v);
}

/**
 * Decodes the binary form. Checks structure only; call {@link verifyDescriptor} before trusting it.
 * Throws ODB_ERR_BAD_DESCRIPTOR for anything malformed; never reads past `buf`.
 */
export function decodeDescriptor(buf: Buffer): Descriptor {
  if (buf.length < fixedBytes + 1) throw bad(`too short (${buf.length} bytes)`);
  if (buf.length > maxDescriptorBytes) throw bad(`too long (${buf.length} bytes)`);
  const version = buf.readUInt8(0);
  if (version !== descriptorVersion) throw bad(`unsupported version ${version}`);
  const flags = buf.readUInt8(1);
  if ((flags & ~flagOpen) !== 0) throw bad(`unknown flags 0x${flags.toString(16)}`);
  const keyId = buf.readUInt16BE(2);
  const endpointLength = buf.readUInt8(4);
  if (buf.length !== fixedBytes + endpointLength) {
    throw bad(`length ${buf.length} does not match endpoint length ${endpointLength}`);
  }
  let at = 5;
  const endpoint = buf.toString('latin1', at, at + endpointLength);
  at += endpointLength;
  const payloadId = Buffer.from(buf.subarray(at, at + payloadIdBytes));
  at += payloadIdBytes;
  const offset = readSafeU64(buf, at, 'offset');
  const length = readSafeU64(buf, at + 8, 'length');
  const totalSize = readSafeU64(buf, at + 16, 'totalSize');
  const expiresAt = readSafeU64(buf, at + 24, 'expiresAt');
  const d: Descriptor = {
    endpoint,
    payloadId,
    offset,
    length,
    totalSize,
    expiresAt,
    keyId,
    open: (flags & flagOpen) !== 0,
    bytes: Buffer.from(buf),
  };
  checkFields(d);
  return d;
}

/**
 * Verifies key id, MAC (constant time) and expiry. Throws ODB_ERR_UNKNOWN_KEY, ODB_ERR_BAD_MAC or
 * ODB_ERR_EXPIRED.
 */
export function verifyDescriptor(d: Descriptor, keyring: Keyring, now: number): void {
  const key = keyring.get(d.keyId);
  if (!key) throw new OdbError('ODB_ERR_UNKNOWN_KEY', `key id ${d.keyId}`);
  const signedLength = d.bytes.length - macBytes;
  const expected = mac(key, d.bytes.subarray(0, signedLength));
  if (!timingSafeEqual(expected, d.bytes.subarray(signedLength))) {
    throw new OdbError('ODB_ERR_BAD_MAC', `payload ${d.payloadId.toString('hex')}`);
  }
  if (now > d.expiresAt) {
    throw new OdbError(
      'ODB_ERR_EXPIRED',
      `payload ${d.payloadId.toString('hex')} expired ${now - d.expiresAt} ms ago`,
    );
  }
}

/** Header-safe and URL-safe text form (base64url, no padding). */
export function descriptorToText(d: Descriptor): string {
  return d.bytes.toString('base64url');
}

const base64UrlPattern = /^[A-Za-z0-9_-]+$/;

/** Parses the text form; rejects anything that is not strict base64url of a well-formed descriptor. */
export function descriptorFromText(text: string): Descriptor {
  if (text.length > maxDescriptorTextLength || !base64UrlPattern.test(text)) {
    throw bad('text is not base64url of a descriptor');
  }
  return decodeDescriptor(Buffer.from(text, 'base64url'));
}

/**
 * Derives the descriptor of a sub-range `[relOffset, relOffset + length)` of `parent`'s range,
 * signed with `key`, without contacting the owner. Open descriptors cannot be narrowed. A new
 * expiry may be set (stream mode: the holder keeps the payload alive with a reference).
 */
export function deriveDescriptor(
  parent: Descriptor,
  key: ClusterKey,
  relOffset: number,
  length: number,
  expiresAt: number = parent.expiresAt,
): Descriptor {
  if (parent.open) throw bad('cannot derive a sub-range of an open descriptor');
  if (
    !Number.isSafeInteger(relOffset) ||
    !Number.isSafeInteger(length) ||
    relOffset < 0 ||
    length < 0 ||
    relOffset + length > parent.length
  ) {
    throw new OdbError(
      'ODB_ERR_OUT_OF_RANGE',
      `sub-range ${relOffset}+${length} of a ${parent.length}-byte range`,
    );
  }
  return signDescriptor({ ...parent, offset: parent.offset + relOffset, length, expiresAt }, key);
}

/** Hex payload id, for logs and store keys. */
export function payloadIdHex(d: Pick<DescriptorFields, 'payloadId'>): string {
  return d.payloadId.toString('hex');
}
