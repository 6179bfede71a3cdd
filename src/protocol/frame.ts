/**
 * Stream-mode frames (docs/protocol.md §3): every write on an ODB connection travels as a frame
 * whose 9-byte header is guarded by a CRC-8, so misframing is detected before a body is trusted.
 *
 *   0..1  magic 0x0D 0xB1
 *   2     version (1)
 *   3     type: 'R' real bytes, 'V' a binary descriptor, 'H' hello
 *   4..7  body length, u32 big-endian
 *   8     CRC-8 of bytes 0..7
 *
 * Pure code: the encoder returns headers, the decoder is an incremental state machine that hands
 * out real bytes as sub-arrays of its input (no copy) and collects only small V/H bodies.
 */
import { OdbError } from '../core/errors.js';
import { crc8 } from './crc8.js';
import { maxDescriptorBytes } from './descriptor.js';

export const frameMagic0 = 0x0d;
export const frameMagic1 = 0xb1;
export const frameVersion = 1;
export const frameHeaderBytes = 9;

export const FrameType = { real: 0x52, virtual: 0x56, hello: 0x48 } as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Largest body of each frame type; a longer length is rejected as soon as the header is read. */
export const maxFrameBody = {
  [FrameType.real]: 16 * 1024 * 1024,
  [FrameType.virtual]: maxDescriptorBytes,
  [FrameType.hello]: 256,
} as const satisfies Record<FrameTypeCode, number>;

/** Writes the header of a frame with this type and body length into `target` at `offset`. */
export function writeFrameHeader(
  target: Buffer,
  offset: number,
  type: FrameTypeCode,
  bodyLength: number,
): void {
  if (!Number.isInteger(bodyLength) || bodyLength < 0 || bodyLength > maxFrameBody[type]) {
    throw new OdbError(
      'ODB_ERR_FRAME_TOO_LARGE',
      `${bodyLength} bytes for type 0x${type.toString(16)}`,
    );
  }
  target[offset] = frameMagic0;
  target[offset + 1] = frameMagic1;
  target[offset + 2] = frameVersion;
  target[offset + 3] = type;
  target.writeUInt32BE(bodyLength, offset + 4);
  target[offset + 8] = crc8(target, offset, offset + 8);
}

/** The header of a frame with this type and body length. */
export function encodeFrameHeader(type: FrameTypeCode, bodyLength: number): Buffer {
  const header = Buffer.allocUnsafe(frameHeaderBytes);
  writeFrameHeader(header, 0, type, bodyLength);
  return header;
}

/** Header + body chunks for `bytes` as R frames of at most the R limit each (none when empty). */
export function encodeRealFrames(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const limit = maxFrameBody[FrameType.real];
  for (let at = 0; at < bytes.length; at += limit) {
    const part = bytes.subarray(at, Math.min(at + limit, bytes.length));
    out.push(encodeFrameHeader(FrameType.real, part.length), part);
  }
  return out;
}

/** Bodies up to this size are framed into one new buffer: a copy is cheaper than a second write. */
export const copyFramingLimit = 16 * 1024;

/**
 * `bytes` as R frames ready to write: one buffer (header and a copy of the body) when the body is
 * small, else headers interleaved with views of `bytes`.
 */
export function frameReal(bytes: Buffer): Buffer[] {
  if (bytes.length === 0 || bytes.length > copyFramingLimit) return encodeRealFrames(bytes);
  const frame = Buffer.allocUnsafe(frameHeaderBytes + bytes.length);
  writeFrameHeader(frame, 0, FrameType.real, bytes.length);
  bytes.copy(frame, frameHeaderBytes);
  return [frame];
}

/** Header + body of a V frame carrying a binary descriptor. */
export function encodeVirtualFrame(descriptorBytes: Buffer): Buffer[] {
  return [encodeFrameHeader(FrameType.virtual, descriptorBytes.length), descriptorBytes];
}

/** What the decoder reports. Real bytes may arrive in several parts; `last` marks a frame's end. */
export type FrameEvent =
  | { readonly type: 'real'; readonly bytes: Buffer; readonly last: boolean }
  | { readonly type: 'virtual'; readonly descriptor: Buffer }
  | { readonly type: 'hello'; readonly body: Buffer };

function isFrameType(t: number): t is FrameTypeCode {
  return t === FrameType.real || t === FrameType.virtual || t === FrameType.hello;
}

/**
 * Incremental frame reader. Feed it any split of the byte stream; it emits events in order.
 * On malformed input it throws an OdbError and stays failed (the connection must be closed).
 */
export class FrameDecoder {
  readonly #header = Buffer.alloc(frameHeaderBytes);
  #headerFill = 0;
  #type: FrameTypeCode | 0 = 0;
  #remaining = 0;
  #small: Buffer | undefined; // body being collected for V/H frames
  #smallFill = 0;
  #failed: OdbError | undefined;

  /** True at a frame boundary: ending the stream here loses nothing. */
  get atBoundary(): boolean {
    return this.#headerFill === 0 && this.#type === 0;
  }

  /** Consumes `chunk`, calling `emit` for each event. Throws on malformed input. */
  push(chunk: Buffer, emit: (event: FrameEvent) => void): void {
    if (this.#failed) throw this.#failed;
    let at = 0;
    while (at < chunk.length) {
      if (this.#type === 0) {
        const take = Math.min(frameHeaderBytes - this.#headerFill, chunk.length - at);
        chunk.copy(this.#header, this.#headerFill, at, at + take);
        this.#headerFill += take;
        at += take;
        if (this.#headerFill < frameHeaderBytes) return;
        this.#startFrame(emit);
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - at);
      this.#remaining -= take;
      if (this.#type === FrameType.real) {
        emit({ type: 'real', bytes: chunk.subarray(at, at + take), last: this.#remaining === 0 });
      } else {
        chunk.copy(this.#small!, this.#smallFill, at, at + take);
        this.#smallFill += take;
      }
      at += take;
      if (this.#remaining === 0) this.#finishFrame(emit);
    }
  }

  /** Declares the end of the stream; throws ODB_ERR_BAD_FRAME if it ends inside a frame. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (!this.atBoundary) this.#fail('ODB_ERR_BAD_FRAME', 'stream ended inside a frame');
  }

  #fail(
    code: 'ODB_ERR_BAD_FRAME' | 'ODB_ERR_BAD_CRC' | 'ODB_ERR_FRAME_TOO_LARGE',
    detail: string,
  ): never {
    this.#failed = new OdbError(code, detail);
    throw this.#failed;
  }

  #startFrame(emit: (event: FrameEvent) => void): void {
    const h = this.#header;
    // The CRC is checked first: a header that fails it says nothing trustworthy about its fields.
    if (crc8(h, 0, 8) !== h[8]) this.#fail('ODB_ERR_BAD_CRC', `header ${h.toString('hex')}`);
    if (h[0] !== frameMagic0 || h[1] !== frameMagic1) this.#fail('ODB_ERR_BAD_FRAME', 'bad magic');
    if (h[2] !== frameVersion) this.#fail('ODB_ERR_BAD_FRAME', `unsupported version ${h[2]}`);
    const type = h[3]!;
    if (!isFrameType(type)) this.#fail('ODB_ERR_BAD_FRAME', `unknown type 0x${type.toString(16)}`);
    const length = h.readUInt32BE(4);
    if (length > maxFrameBody[type]) {
      this.#fail(
        'ODB_ERR_FRAME_TOO_LARGE',
        `${length} bytes for type ${String.fromCharCode(type)}`,
      );
    }
    this.#headerFill = 0;
    this.#type = type;
    this.#remaining = length;
    if (type !== FrameType.real) {
      this.#small = Buffer.allocUnsafe(length);
      this.#smallFill = 0;
    }
    if (length === 0) this.#finishFrame(emit);
  }

  #finishFrame(emit: (event: FrameEvent) => void): void {
    const type = this.#type;
    const body = this.#small;
    this.#type = 0;
    this.#small = undefined;
    // R frames were reported part by part as they arrived (an empty one carries nothing).
    if (type === FrameType.virtual) emit({ type: 'virtual', descriptor: body! });
    else if (type === FrameType.hello) emit({ type: 'hello', body: body! });
  }
}
