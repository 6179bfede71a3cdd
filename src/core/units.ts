/** Sizes and durations as people write them in flags and config files. */
import { OdbError } from './errors.js';

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

const durationUnits: Readonly<Record<string, number>> = {
  '': 1,
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

/** A number with an optional unit from `units` (matched case-insensitively), as an integer. */
function parseWithUnit(
  text: string | number,
  units: Readonly<Record<string, number>>,
  what: string,
  example: string,
): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(String(text));
  const unit = units[match?.[2]?.toLowerCase() ?? 'x'];
  const value = match && unit !== undefined ? Math.round(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new OdbError(
      'ODB_ERR_INVALID_OPTION',
      `${what}: ${JSON.stringify(text)} is not ${example}`,
    );
  }
  return value;
}

/** Bytes from `65536`, `64KiB`, `64k`, `1.5MiB` (binary units only: a KiB is 1024 bytes). */
export function parseSize(text: string | number, what = 'size'): number {
  return parseWithUnit(text, sizeUnits, what, 'a size like 64KiB');
}

/** Milliseconds from `1500`, `1500ms`, `30s`, `2m`. */
export function parseDuration(text: string | number, what = 'duration'): number {
  return parseWithUnit(text, durationUnits, what, 'a duration like 30s');
}

/** `1.0 MiB`-style text for reports. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${+(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${+(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${+(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
