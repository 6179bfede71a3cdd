/** Sizes and durations as people write them in flags and config files. */
import { OdbError } from '../errors.js';

const sizeUnits: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Bytes from `65536`, `64KiB`, `64k`, `1.5MiB` (binary units only: a KiB is 1024 bytes). */
export function parseSize(text: string | number, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(String(text));
  const unit = sizeUnits[match?.[2]?.toLowerCase() ?? 'x'];
  const bytes = match && unit !== undefined ? Math.round(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new OdbError(
      'ODB_ERR_INVALID_OPTION',
      `${what}: ${JSON.stringify(text)} is not a size like 64KiB`,
    );
  }
  return bytes;
}

const durationUnits: Readonly<Record<string, number>> = {
  '': 1,
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

/** Milliseconds from `1500`, `1500ms`, `30s`, `2m`. */
export function parseDuration(text: string | number, what = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/.exec(String(text));
  const unit = durationUnits[match?.[2] ?? 'x'];
  const ms = match && unit !== undefined ? Math.round(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new OdbError(
      'ODB_ERR_INVALID_OPTION',
      `${what}: ${JSON.stringify(text)} is not a duration like 30s`,
    );
  }
  return ms;
}

/** `1.0 MiB`-style text for reports. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${+(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${+(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${+(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
