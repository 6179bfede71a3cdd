/** Logging (pino, JSON lines): the logger of an `odb` process and the silent one for libraries. */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Logger used when a library caller gives none: says nothing. */
export const silentLogger: Logger = pino({ level: 'silent' });

/** The JSON-lines logger of an `odb` process (stdout; the `ready` line is what scripts wait for). */
export function createLogger(name: string, level: string): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
