/** `host:port` strings: the one format ODB uses for listen addresses and store endpoints. */
import type { AddressInfo } from 'node:net';
import { OdbError } from '../errors.js';

/** A parsed `host:port`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port`, `[v6]:port` or `:port` (all interfaces); names `what` in errors. */
export function parseHostPort(text: string, what = 'address'): HostPort {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new OdbError(
      'ODB_ERR_INVALID_OPTION',
      `${what} must be host:port, got ${JSON.stringify(text)}`,
    );
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

/** `host:port` of a bound socket address, IPv6 in brackets. */
export function formatAddress(address: AddressInfo | HostPort): string {
  const host = 'address' in address ? address.address : address.host;
  return host.includes(':') ? `[${host}]:${address.port}` : `${host}:${address.port}`;
}
