/**
 * The hello that opens an ODB connection (docs/protocol.md §3): an H frame whose 4-byte body is
 * the lowest and highest protocol version the sender speaks, a flags byte and a reserved byte (0).
 * The connecting side sends it first; an ODB acceptor answers with its own. Flag 1 marks a probe
 * (`ODB_CONNECT=*` asking whether a port speaks ODB): the acceptor answers it and never hands
 * the connection to its application.
 */
import { crc8 } from '../protocol/crc8.js';
import {
  FrameType,
  encodeFrameHeader,
  frameHeaderBytes,
  frameMagic0,
  frameMagic1,
  frameVersion,
} from '../protocol/frame.js';

const helloBody = Buffer.from([1, 1, 0, 0]);
const probeHelloBody = Buffer.from([1, 1, 1, 0]);
/** Length of a complete hello frame. */
export const helloBytes = frameHeaderBytes + helloBody.length;

/** A hello frame, ready to write; `probe`: the hello of a probe connection. */
export function helloFrame(probe = false): Buffer {
  const body = probe ? probeHelloBody : helloBody;
  return Buffer.concat([encodeFrameHeader(FrameType.hello, body.length), body]);
}

/** True for a complete hello (see {@link readHello}) that marks a probe. */
export function isProbeHello(bytes: Buffer): boolean {
  return bytes.length > frameHeaderBytes + 2 && (bytes[frameHeaderBytes + 2]! & 1) === 1;
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
