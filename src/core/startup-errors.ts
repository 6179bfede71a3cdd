/**
 * Start-up failures as one line an operator can act on: which setting is wrong and how to fix
 * it. Configuration errors (a bad option, config file, key file or TLS file, an address that
 * cannot be bound, a missing directory) exit with status 2; anything else with 1.
 */
import { statSync } from 'node:fs';
import { OdbError, isOdbError, type OdbErrorCode } from './errors.js';
import { formatAddress, type HostPort } from './net/address.js';

/** Codes of errors the configuration caused: the process exits 2 for them. */
const configurationCodes: ReadonlySet<OdbErrorCode> = new Set([
  'ODB_ERR_INVALID_OPTION',
  'ODB_ERR_KEY_FILE',
  'ODB_ERR_TLS_FILE',
  'ODB_ERR_LISTEN',
]);

/** The exit status for a start-up error: 2 for configuration errors, 1 otherwise. */
export function exitStatusFor(err: unknown): number {
  return isOdbError(err) && configurationCodes.has(err.code) ? 2 : 1;
}

/** The one line printed for a start-up error (no stack trace: the message says what to do). */
export function startupErrorLine(err: unknown): string {
  const text = isOdbError(err) ? `${err.message} [${err.code}]` : String(err);
  return `odb: ${text.replace(/\s*\n\s*/g, ' ')}`;
}

/** What an operator can do about a failed listen, by errno. */
const listenFixes: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use; stop what listens there or choose another port',
  EACCES:
    'permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE, choose a port from 1024',
  EADDRNOTAVAIL:
    'no interface of this host has that address; use one of its addresses, or 0.0.0.0 for all',
  ENOTFOUND: 'the host name does not resolve; use an IP address or a name this host resolves',
  EAI_AGAIN: 'the host name could not be resolved now; use an IP address',
};

/**
 * Names the flag behind a listen error (`err.address`/`err.port`, or `err.hostname` for a name
 * that does not resolve) among `listeners` (flag → address it was given). Returns an
 * ODB_ERR_LISTEN error, or undefined when `err` is no listen error.
 */
export function describeListenError(
  err: unknown,
  listeners: Readonly<Record<string, HostPort | undefined>>,
): OdbError | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const fix = e?.code ? listenFixes[e.code] : undefined;
  if (!fix || (e.syscall !== 'listen' && e.syscall !== 'getaddrinfo')) return undefined;
  const given = Object.entries(listeners).filter(
    (entry): entry is [string, HostPort] => entry[1] !== undefined,
  );
  const sameHost = (a: HostPort): boolean => a.host === (e.hostname ?? e.address);
  const byHost = e.hostname ? given.filter(([, a]) => sameHost(a)) : [];
  const byPort = given.filter(([, a]) => a.port === e.port);
  const byBoth = byPort.filter(([, a]) => sameHost(a));
  const named = [byBoth, byPort, byHost, given].find((list) => list.length > 0) ?? [];
  const what = named.map(([flag, a]) => `${flag} ${formatAddress(a)}`).join(' or ');
  return new OdbError('ODB_ERR_LISTEN', `${what || 'listen'}: ${fix}`, { cause: err });
}

/** Throws ODB_ERR_INVALID_OPTION naming `flag` unless `path` is an existing directory. */
export function requireDirectory(path: string, flag: string): void {
  let problem: string | undefined;
  try {
    if (!statSync(path).isDirectory()) problem = 'is not a directory';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problem = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
  }
  if (problem) {
    throw new OdbError(
      'ODB_ERR_INVALID_OPTION',
      `${flag} ${path}: ${problem}; give the directory to serve`,
    );
  }
}
