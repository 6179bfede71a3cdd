/**
 * The store's kernel path: a file payload's range goes from the page cache to the fetching
 * socket by `sendfile(2)` (src/native/transfer.ts), never through JavaScript. Node writes and
 * flushes the response head; the engine sends exactly the range; Node ends the response, and the
 * connection stays open for the next fetch. Where the kernel path cannot be taken (no addon,
 * ODB_NATIVE=off, a socket that cannot be lent, a payload that is not a file), the store's
 * JavaScript copy serves instead, and the reason is counted and logged once.
 */
import { closeSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { OdbError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { countKernelBytes, lendableFd, markLent, whenFlushed } from '../core/net/socket-handoff.js';
import { transferEngine } from '../native/transfer.js';
import { FilePayload } from './payloads/file.js';
import type { PayloadSource } from './payloads/source.js';

/** Why a send took the JavaScript path. */
export type JavaScriptSendReason = 'unavailable' | 'disabled' | 'not-file' | 'tls' | 'not-lendable';

/** How a store's sends went: by the kernel, or by JavaScript and why. */
export interface StoreSendStats {
  kernel: number;
  javascript: Partial<Record<JavaScriptSendReason, number>>;
}

/** The outcome of {@link KernelSender.send}: undefined when the JavaScript path must serve. */
export type KernelSendResult = { readonly complete: boolean; readonly bytes: number } | undefined;

export class KernelSender {
  readonly stats: StoreSendStats = { kernel: 0, javascript: {} };
  /** Sends cut because their peer took nothing for `idleMs` (the send watchdog counts its own). */
  idleCuts = 0;
  readonly #logged = new Set<string>();

  constructor(
    readonly enabled: boolean,
    readonly idleMs: number,
    readonly log: Logger,
  ) {}

  /**
   * Sends `[start, end)` of `source` as the body of `res` (whose head is written, not yet flushed)
   * with sendfile. Resolves `{ complete: true }` once every byte is in the socket and the response
   * ended; `{ complete: false }` when the peer went away or stalled (the socket is destroyed).
   * Rejects with ODB_ERR_SOURCE_CHANGED when the file changed before or while it was sent (the
   * caller cuts the connection short). Undefined: nothing was sent, serve it from JavaScript.
   */
  async send(
    res: ServerResponse,
    source: PayloadSource,
    start: number,
    end: number | undefined,
  ): Promise<KernelSendResult> {
    if (!(source instanceof FilePayload) || end === undefined) return this.#fallback('not-file');
    const loaded = transferEngine(this.enabled);
    if ('reason' in loaded) {
      return this.#fallback(this.enabled ? 'unavailable' : 'disabled', loaded.reason);
    }
    const socket = res.socket;
    const fd = lendableFd(socket);
    if (typeof fd !== 'number' || !socket)
      return this.#fallback(fd === 'tls' ? 'tls' : 'not-lendable');
    const file = source.openFd();
    try {
      res.flushHeaders();
      if (!(await whenFlushed(socket, this.idleMs))) {
        res.destroy();
        return { complete: false, bytes: 0 };
      }
      let transfer;
      try {
        transfer = loaded.engine.sendfile(file, fd, source.start + start, end - start, this.idleMs);
      } catch (err) {
        // No transfer started (no descriptor to spare): the JavaScript path can still serve.
        this.#note('not-lendable', (err as Error).message);
        this.stats.javascript['not-lendable'] = (this.stats.javascript['not-lendable'] ?? 0) + 1;
        return undefined;
      }
      this.stats.kernel++;
      const cancel = (): void => transfer.cancel();
      socket.once('close', cancel);
      const unlend = markLent(socket, end - start);
      const ended = await transfer.ended;
      unlend();
      socket.off('close', cancel);
      countKernelBytes(socket, 'written', ended.written);
      if (ended.errno === 0) {
        res.end();
        return { complete: true, bytes: ended.written };
      }
      if (ended.side === 'source') {
        throw new OdbError(
          'ODB_ERR_SOURCE_CHANGED',
          `${source.path} changed while being sent (${ended.reason} after ${ended.written} bytes)`,
        );
      }
      if (ended.reason === 'ETIMEDOUT') {
        this.idleCuts++;
        this.log.warn(
          { code: 'ODB_ERR_SEND_TIMEOUT', sent: ended.written },
          'store connection cut: its peer stopped reading',
        );
      }
      res.destroy();
      return { complete: false, bytes: ended.written };
    } finally {
      closeSync(file);
    }
  }

  #fallback(reason: JavaScriptSendReason, why?: string): undefined {
    this.stats.javascript[reason] = (this.stats.javascript[reason] ?? 0) + 1;
    if (reason !== 'not-file') this.#note(reason, why);
    return undefined;
  }

  #note(reason: string, why: string | undefined): void {
    if (this.#logged.has(reason)) return;
    this.#logged.add(reason);
    this.log.info({ reason, why }, 'store sends by JavaScript, not sendfile');
  }
}
