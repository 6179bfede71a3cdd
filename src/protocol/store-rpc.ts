/**
 * Buffer-store fetch protocol (docs/protocol.md §4): plain HTTP/1.1, the signed descriptor in the
 * path. curl, stock proxies and any HTTP client can fetch; undici pools and pipelines it.
 *
 *   GET    /odb/v1/payload/<descriptor>   the descriptor's bytes; `Range: bytes=a-b` is relative
 *                                          to the descriptor's range; `odb-release: complete`
 *                                          releases the payload once every byte was sent
 *   DELETE /odb/v1/payload/<descriptor>   release now (204)
 *   GET    /odb/v1/ping[?challenge=<c>]   liveness and store counters (JSON); with a challenge,
 *                                          also the signing key id and a proof (key-proof.ts)
 *   GET    /odb/v1/references             with `Upgrade: odb-references/1`: a long-lived channel
 *                                          of lines "retain <descriptor>" / "release <descriptor>",
 *                                          applied in order (stream mode); the store answers only
 *                                          lines it could not apply: "error <code> <message>"
 *
 * Errors: an HTTP status, the stable code in `odb-error`, and a JSON body {code, message}.
 */
import { httpStatusOf, type OdbErrorCode } from '../core/errors.js';

/** Every store-protocol path starts with this. */
export const storeProtocolPrefix = '/odb/';
export const payloadPathPrefix = '/odb/v1/payload/';
export const pingPath = '/odb/v1/ping';
export const referencesPath = '/odb/v1/references';
/** The `Upgrade` token of the reference channel. */
export const referencesProtocol = 'odb-references/1';
/** Longest line on a reference channel; a longer one closes the channel. */
export const maxReferenceLineBytes = 4096;
/** The answer to `GET /odb/v1/ping`. */
export interface StorePing {
  readonly ok: boolean;
  readonly endpoint: string;
  /** Payloads held now, and the budget bytes they are charged. */
  readonly entries: number;
  readonly chargedBytes: number;
  /** Payloads registered since the store started. */
  readonly registered: number;
  /** With a challenge: the id of the key the store signs with, and its proof (key-proof.ts). */
  readonly keyId?: number;
  readonly proof?: string;
  /** A stream-mode agent's lazy-buffer counters (absent for header-mode stores). */
  readonly faults?: number;
  readonly faultBytes?: number;
  readonly fetchFailures?: number;
  readonly lazyRegions?: number;
  /** A stream-mode agent's own-payload memory not yet freed, in bytes (with the addon). */
  readonly ownPayloadBytes?: number;
  /**
   * A stream-mode process learning peers (`ODB_CONNECT=*`): probes opened, connections that
   * waited for one (and whose wait ran out), plain connections retired, hellos refused.
   */
  readonly probes?: number;
  readonly probeWaits?: number;
  readonly probeWaitsExpired?: number;
  readonly plainRetired?: number;
  readonly helloRefused?: number;
  /**
   * A stream-mode process writing lazy buffers to plain sockets: runs the kernel spliced from
   * their owners' stores (their bytes, the store requests they took), and views fetched into
   * memory first instead, by why (docs/stream-mode.md, Plain destinations).
   */
  readonly plainWrites?: {
    readonly kernel: number;
    readonly kernelBytes: number;
    readonly kernelRequests: number;
    readonly fetched: Readonly<Record<string, number>>;
  };
  /** A stream-mode process whose store budget was spent: large writes it sent real, and bytes. */
  readonly overBudget?: { readonly writes: number; readonly bytes: number };
}

/** Request header asking the store to release the payload after a complete fetch. */
export const releaseHeader = 'odb-release';
export const releaseOnComplete = 'complete';
/** Response header carrying the stable error code. */
export const errorHeader = 'odb-error';

/** HTTP status a store answers with for an error code (500 for codes that have none). */
export function statusForError(code: OdbErrorCode): number {
  return httpStatusOf(code) ?? 500;
}

/** True for a path of the store protocol (a front end never offers or inspects on those). */
export function isStoreProtocolPath(pathname: string): boolean {
  return pathname.startsWith(storeProtocolPrefix);
}

/** The path that fetches or releases the payload named by a descriptor's text form. */
export function payloadPath(descriptorText: string): string {
  return payloadPathPrefix + descriptorText;
}
