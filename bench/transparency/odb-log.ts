/**
 * What the layer said while a suite ran. ODB logs JSON lines (pino, name "odb") on standard
 * error; a warning there often explains a failure better than the test's assertion does (a
 * connection the layer closed, a write it refused). Counted per code and message shape.
 */

/** Message shape → how many times it was logged. */
export type OdbMessages = Record<string, number>;

interface PinoLine {
  readonly name?: string;
  readonly level?: number;
  readonly code?: string;
  readonly msg?: string;
}

// Ports, ids and byte counts differ on every line of the same kind. A hex dump keeps its first
// bytes: they tell what arrived (16 03 01 is a TLS record, 47 45 54 is GET).
function shape(msg: string): string {
  return msg
    .split(/\b([0-9a-f]{8,})\b/i)
    .map((part, i) => (i % 2 === 1 ? `${part.slice(0, 6)}…` : part.replace(/\d+/g, 'N')))
    .join('')
    .slice(0, 160);
}

/** Adds the ODB lines of `stderr` to `into`. */
export function countOdbMessages(stderr: string, into: OdbMessages): void {
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"name":"odb"')) continue;
    let parsed: PinoLine;
    try {
      parsed = JSON.parse(line) as PinoLine;
    } catch {
      continue;
    }
    if (parsed.name !== 'odb') continue;
    const key = `${parsed.code ?? `level ${parsed.level}`}: ${shape(parsed.msg ?? '')}`;
    into[key] = (into[key] ?? 0) + 1;
  }
}
