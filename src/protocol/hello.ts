/**
 * The hello that opens an ODB connection (docs/protocol.md §3): an H frame whose 4-byte body is
 * the lowest and highest protocol version the sender speaks, a flags byte and a reserved byte (0).
 * The connecting side sends it first; an ODB acceptor answers with its own, flagged as an answer.
 * A probe's hello is flagged as one: the acceptor answers it and never hands the connection to
 * its application.
 */
import { crc8 } from './crc8.js';
import {
  FrameType,
  encodeFrameHeader,
  frameHeaderBytes,
  frameMagic0,
  frameMagic1,
  frameVersion,
} from './frame.js';

/** Flags of the hello's third body byte. */
export const helloFlags = {
  /** A probe (`ODB_CONNECT=*` asking whether a port speaks ODB). */
  probe: 1,
  /** An acceptor's answer: a connector takes only this for an answer, so that a plain peer that
   * echoes what it gets (an echo server) is never taken for an ODB one. */
  answer: 2,
} as const;

/** A hello frame with `flags` (see {@link helloFlags}), ready to write. */
export function helloFrame(flags = 0): Buffer {
  const body = Buffer.from([1, 1, flags, 0]);
  return Buffer.concat([encodeFrameHeader(FrameType.hello, body.length), body]);
}

/** The flags of a complete hello (see {@link readHello}). */
export function flagsOf(hello: Buffer): number {
  return hello[frameHeaderBytes + 2] ?? 0;
}

/**
 * Looks at the first bytes a peer sent: a valid hello (its length), not a hello at all (plain
 * traffic: decided as soon as one byte disagrees), or too short to tell yet.
 */
export function readHello(bytes: Buffer): number | 'not-hello' | 'incomplete' {
  const expected = [frameMagic0, frameMagic1, frameVersion, FrameType.hello];
  for (let i = 0; i < Math.min(bytes.length, expected.length); i++) {
    if (bytes[i] !== expected[i]) return 'not-hello';
  }
  if (bytes.length < frameHeaderBytes) return 'incomplete';
  if (crc8(bytes, 0, 8) !== bytes[8]) return 'not-hello';
  const length = bytes.readUInt32BE(4);
  if (length < 2 || length > 256) return 'not-hello';
  if (bytes.length < frameHeaderBytes + length) return 'incomplete';
  const min = bytes[frameHeaderBytes]!;
  const max = bytes[frameHeaderBytes + 1]!;
  if (min > 1 || max < 1) return 'not-hello'; // no version in common: treat the peer as plain
  return frameHeaderBytes + length;
}
