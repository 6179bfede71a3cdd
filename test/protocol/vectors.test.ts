// The vectors in docs/protocol.md are the spec: this test reads them from the page.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Keyring } from '../../src/core/keys/keyring.js';
import {
  decodeDescriptor,
  deriveDescriptor,
  descriptorFromText,
  descriptorToText,
  signDescriptor,
  verifyDescriptor,
} from '../../src/protocol/descriptor.js';
import { encodeFrameHeader, type FrameTypeCode } from '../../src/protocol/frame.js';
import { repoRoot } from '../helpers/repo.js';

const page = readFileSync(join(repoRoot, 'docs/protocol.md'), 'utf8');
const blocks = (tag: string): unknown[] =>
  [...page.matchAll(new RegExp('```json ' + tag + '\\n([\\s\\S]*?)```', 'g'))].map((m) =>
    JSON.parse(m[1]!),
  );

interface Vector {
  keyId: number;
  endpoint: string;
  payloadId: string;
  offset: number;
  length: number;
  totalSize: number;
  expiresAt: number;
  open: boolean;
  hex: string;
  text: string;
  derivedFrom?: number;
  relOffset?: number;
}

const key = { id: 0x1234, secret: Buffer.from([...Array(32).keys()]) };
const vectors = blocks('vector') as Vector[];

test('docs/protocol.md has descriptor vectors', () => {
  assert.equal(vectors.length, 3);
});

for (const [i, v] of vectors.entries()) {
  test(`descriptor vector ${i}: encodes, decodes and verifies as documented`, () => {
    const signed =
      v.derivedFrom === undefined
        ? signDescriptor(
            {
              endpoint: v.endpoint,
              payloadId: Buffer.from(v.payloadId, 'hex'),
              offset: v.offset,
              length: v.length,
              totalSize: v.totalSize,
              expiresAt: v.expiresAt,
              open: v.open,
            },
            key,
          )
        : deriveDescriptor(
            decodeDescriptor(Buffer.from(vectors[v.derivedFrom]!.hex, 'hex')),
            key,
            v.relOffset!,
            v.length,
          );
    assert.equal(signed.bytes.toString('hex'), v.hex);
    assert.equal(descriptorToText(signed), v.text);
    const decoded = descriptorFromText(v.text);
    assert.deepEqual(
      { ...decoded, payloadId: decoded.payloadId.toString('hex'), bytes: undefined },
      {
        keyId: v.keyId,
        endpoint: v.endpoint,
        payloadId: v.payloadId,
        offset: v.offset,
        length: v.length,
        totalSize: v.totalSize,
        expiresAt: v.expiresAt,
        open: v.open,
        bytes: undefined,
      },
    );
    verifyDescriptor(decoded, new Keyring([key]), v.expiresAt);
  });
}

test('frame header vectors', () => {
  const [list] = blocks('frame-vector') as { type: FrameTypeCode; length: number; hex: string }[][];
  assert.equal(list!.length, 3);
  for (const v of list!) assert.equal(encodeFrameHeader(v.type, v.length).toString('hex'), v.hex);
});
