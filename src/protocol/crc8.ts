/**
 * CRC-8 with polynomial 0x07, initial value 0x00, no reflection, no final XOR
 * (the "CRC-8/SMBUS" parameters; check value for "123456789" is 0xF4).
 * Guards stream-mode frame headers against misframing. Pure, table-driven.
 */
const table = new Uint8Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let bit = 0; bit < 8; bit++) c = c & 0x80 ? ((c << 1) ^ 0x07) & 0xff : (c << 1) & 0xff;
  table[n] = c;
}

/** CRC-8 of `bytes[start, end)`. */
export function crc8(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0;
  for (let i = start; i < end; i++) c = table[c ^ bytes[i]!]!;
  return c;
}
