/**
 * Writes of lazy buffers on plain sockets (a client, a non-ODB peer, a pipe). Their missing
 * bytes must reach the socket without the kernel faulting on the pages, which would block this
 * thread on the agent. Two ways:
 *
 * - **by the kernel** (plain TCP, the addon's transfer engine, views untouched since they were
 *   filled): each run of contiguous views of one region is fetched from its owner's store and
 *   spliced from the store connection into the socket (src/store/spliced-fetch.ts). The pages
 *   stay empty, and no byte crosses JavaScript;
 * - **fetched first**: otherwise (TLS, pipes, a view written into, no addon), the agent fills
 *   the missing pages and Node writes them as any buffer.
 *
 * Either way the write keeps its place: Node issues no other write on the socket until this
 * one's callback, and what comes before a spliced run in the same writev (an HTTP head) is
 * written first. What the application can see of the socket stays as it would be: its
 * `bytesWritten` counts the spliced bytes, and a slow reader is never cut for being slow (only
 * the store's side has an idle limit, ODB_FETCH_TIMEOUT).
 */
import type { NetConnectOpts, Socket } from 'node:net';
import net from 'node:net';
import type { Logger } from '../../core/log.js';
import { lendableFd } from '../../core/net/socket-handoff.js';
import { transferEngine } from '../../native/transfer.js';
import { deriveDescriptor } from '../../protocol/descriptor.js';
import { DestinationClosedError } from '../../http-core/response-sink.js';
import { SplicedFetcher, type SplicedBody } from '../../store/spliced-fetch.js';
import type { PlainWriteCounters, PlainWriteFallback } from '../agent/protocol.js';
import type { LazyView, StreamRuntime } from './runtime.js';
import { PacedReport } from './paced-report.js';
import { kOdbInternal } from './symbols.js';

/** The callback of a socket write. */
export type WriteCallback = (err?: Error | null) => void;
/** Node's `net.Socket.prototype._writeGeneric` (lib/net.js), where every socket write ends. */
export type WriteGeneric = (
  this: Socket,
  writev: boolean,
  data: unknown,
  encoding: string,
  cb: WriteCallback,
) => void;

/** One chunk of a write, as Node hands a writev's. */
interface Entry {
  readonly chunk: unknown;
  readonly encoding: string;
}

/** Consecutive chunks written as they are, or one run of lazy views spliced by the kernel. */
type Part =
  | { readonly kind: 'node'; readonly entries: Entry[] }
  | { readonly kind: 'kernel'; view: LazyView; readonly entries: Entry[] };

/** A store body spliced into a socket write by write, with where its next byte is. */
type LazyRegion = LazyView['region'];

interface OpenBody {
  readonly region: LazyRegion;
  /** Offset in the region of the body's next byte. */
  next: number;
  readonly body: SplicedBody;
  /** Between writes: gives the body up when no write continues it for {@link keepBodyMs}. */
  timer: NodeJS.Timeout | undefined;
  readonly onClose: () => void;
}

/**
 * How long a body waits for the socket's next write. The application writes the next slice as
 * soon as the last one is in the socket (a pipe's 'drain'), so this is only for one that stops.
 */
const keepBodyMs = 1000;

/** Bytes the kernel wrote to a socket past Node, added to what its `bytesWritten` says. */
const kernelWritten = new WeakMap<Socket, number>();
const bytesWrittenGetter = Object.getOwnPropertyDescriptor(
  net.Socket.prototype,
  'bytesWritten',
)?.get;

/**
 * One getter for every socket: sockets given the same accessor function share one hidden class,
 * where a fresh closure per socket would give each its own, and code handling sockets would then
 * turn polymorphic and be thrown away with each socket's class.
 */
function bytesWrittenWithKernel(this: Socket): number {
  return (bytesWrittenGetter!.call(this) as number) + (kernelWritten.get(this) ?? 0);
}

function addBytesWritten(socket: Socket, bytes: number): void {
  if (!bytesWrittenGetter || bytes <= 0) return;
  if (!kernelWritten.has(socket)) {
    Object.defineProperty(socket, 'bytesWritten', {
      configurable: true,
      get: bytesWrittenWithKernel,
    });
  }
  kernelWritten.set(socket, (kernelWritten.get(socket) ?? 0) + bytes);
}

/** Writes on plain sockets of the process: see the top of this file. */
export class PlainWriter {
  readonly counters: PlainWriteCounters = {
    kernel: 0,
    kernelBytes: 0,
    kernelRequests: 0,
    fetched: {},
  };
  readonly #runtime: StreamRuntime;
  readonly #writeGeneric: WriteGeneric;
  readonly #log: Logger;
  readonly #fetcher: SplicedFetcher | undefined;
  readonly #unavailable: string | undefined;
  readonly #logged = new Set<PlainWriteFallback>();
  readonly #report: PacedReport;
  /** Per socket, the store body its next write of a lazy view may continue. */
  readonly #bodies = new WeakMap<Socket, OpenBody>();

  constructor(runtime: StreamRuntime, writeGeneric: WriteGeneric, log: Logger) {
    this.#runtime = runtime;
    this.#writeGeneric = writeGeneric;
    this.#log = log;
    this.#report = new PacedReport(() => runtime.reportPlainWrites(this.counters));
    // Without userfaultfd there are no lazy buffers to write (virtual data arrives fetched).
    const loaded = runtime.lazy ? transferEngine(runtime.config.native) : undefined;
    if (loaded && 'engine' in loaded) {
      this.#fetcher = new SplicedFetcher({
        engine: loaded.engine,
        fetchTimeoutMs: runtime.config.fetch.timeoutMs,
        idleTimeoutMs: runtime.config.fetch.timeoutMs,
        destinationIdleMs: 0,
        connect: connectInternal,
      });
    } else this.#unavailable = loaded?.reason;
  }

  /** Writes `data` (one chunk, or a writev's entries) on `socket`, then calls `cb`. */
  write(socket: Socket, writev: boolean, data: unknown, encoding: string, cb: WriteCallback): void {
    const entries: Entry[] = writev ? (data as Entry[]) : [{ chunk: data, encoding }];
    const parts: Part[] = [];
    const toFetch: { view: LazyView; viewOnly: boolean }[] = [];
    let spliced = false;
    for (const entry of entries) {
      const view = this.#lazyView(entry.chunk);
      const last = parts.at(-1);
      if (view) {
        const refused = this.#kernelRefusal(socket, view);
        if (refused === undefined) {
          spliced = true;
          if (last?.kind === 'kernel' && continues(last.view, view)) {
            last.view = { ...last.view, length: last.view.length + view.length };
            last.entries.push(entry);
          } else parts.push({ kind: 'kernel', view, entries: [entry] });
          continue;
        }
        this.#countFallback(refused);
        // A view written into: its own pages only, so that the region's other views still splice
        // (the whole region, 4 MiB say, was fetched into memory for one written byte).
        toFetch.push({ view, viewOnly: refused === 'changed' });
      }
      if (last?.kind === 'node') last.entries.push(entry);
      else parts.push({ kind: 'node', entries: [entry] });
    }
    if (!spliced && toFetch.length === 0) {
      this.#writeGeneric.call(socket, writev, data, encoding, cb);
      return;
    }
    const fetched = Promise.all(
      toFetch.map(({ view, viewOnly }) => this.#runtime.materialize(view, viewOnly)),
    );
    const written = spliced
      ? fetched.then(() => this.#writeParts(socket, parts))
      : fetched.then(() => this.#writeNode(socket, writev, data, encoding));
    // The callback runs outside the promise's reaction, as Node runs it: an exception it throws
    // is an uncaught exception, not a rejection.
    written.then(
      () => process.nextTick(cb),
      (err: Error) => {
        socket.destroy(err);
        process.nextTick(cb, err);
      },
    );
  }

  /** A lazy view of `chunk` whose bytes are not all in memory yet. */
  #lazyView(chunk: unknown): LazyView | undefined {
    if (typeof chunk === 'string' || !chunk) return undefined;
    const view = this.#runtime.lazyView(chunk as Uint8Array);
    return view && !this.#runtime.isMaterialized(view) ? view : undefined;
  }

  /** Why `view` cannot be spliced into `socket`, or undefined when it can. */
  #kernelRefusal(socket: Socket, view: LazyView): PlainWriteFallback | undefined {
    if (!this.#fetcher) return 'unavailable';
    const fd = lendableFd(socket);
    if (fd === 'tls') return 'tls';
    // TCP only (a pipe or a TTY has a descriptor too, but no remote address).
    if (typeof fd !== 'number' || typeof socket.remoteAddress !== 'string') return 'not-lendable';
    // Written into since it was filled, or fetched whole already (its reference given back).
    return this.#runtime.canForward(view) ? undefined : 'changed';
  }

  async #writeParts(socket: Socket, parts: readonly Part[]): Promise<void> {
    for (const part of parts) {
      if (part.kind === 'node') {
        const single = part.entries.length === 1 ? part.entries[0]! : undefined;
        await (single
          ? this.#writeNode(socket, false, single.chunk, single.encoding)
          : this.#writeNode(socket, true, part.entries, ''));
      } else await this.#splice(socket, part);
    }
  }

  /** Node's own write of `data`, as a promise. */
  #writeNode(socket: Socket, writev: boolean, data: unknown, encoding: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#writeGeneric.call(socket, writev, data, encoding, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }

  /**
   * The kernel's write of one run of views, from the owner's store into `socket`. The store is
   * asked once for the rest of the region; the run's bytes are spliced, and the body's remainder
   * is kept open for the socket's next write, which is usually the next slice of the same
   * region (a proxy writes a 1 MiB body as 16 writes of 64 KiB, each after the one before).
   */
  async #splice(socket: Socket, part: Extract<Part, { kind: 'kernel' }>): Promise<void> {
    const runtime = this.#runtime;
    const fd = lendableFd(socket);
    if (typeof fd !== 'number' || !runtime.canForward(part.view)) {
      // Changed while the parts before it were written: fetched first after all.
      this.#countFallback(typeof fd === 'number' ? 'changed' : 'not-lendable');
      return this.#fetchThenWrite(socket, part);
    }
    const { region, offset, length } = part.view;
    /** Bytes of the run Node wrote itself (those that came with a store's head). */
    let byNode = 0;
    const target = {
      start: () => {
        // Destroyed meanwhile: its descriptor's number may name another socket by now.
        if (lendableFd(socket) !== fd) return undefined;
        return {
          socket,
          fd,
          // Inside this socket's _write: Node's buffer holds this very write.
          flushScope: 'handle' as const,
          write: (bytes: Buffer) =>
            new Promise<boolean>((resolve) => {
              byNode += bytes.length;
              this.#writeGeneric.call(socket, false, bytes, 'buffer', (err) => resolve(!err));
            }),
        };
      },
    };
    // A body kept open since the last write, if this run continues it; else a new one. A store
    // connection that failed (the store cut a body kept while its client was slow, say) is
    // replaced once, from the first byte that did not reach the socket: the payload's bytes
    // do not change, so the new body goes on where the old one stopped.
    let done = 0;
    for (let attempt = 0; ; attempt++) {
      const at = offset + done;
      let kept: OpenBody;
      try {
        kept =
          this.#continued(socket, region, at, length - done) ??
          (await this.#openBody(socket, region, at));
      } catch (err) {
        if (done > 0) throw err;
        // Nothing reached the socket yet: the agent's fetch, with its retries, decides.
        this.#countFallback('refused', (err as Error).message);
        return this.#fetchThenWrite(socket, part);
      }
      try {
        await kept.body.next(length - done, target);
        kept.next = offset + length;
        break;
      } catch (err) {
        done += kept.body.delivered;
        this.#close(socket, kept);
        const destinationGone =
          (err as { cause?: unknown }).cause instanceof DestinationClosedError;
        if (destinationGone || attempt > 0) throw err;
      }
    }
    const kept = this.#bodies.get(socket);
    if (kept) {
      if (kept.body.remaining === 0) this.#close(socket, kept);
      else kept.timer = setTimeout(() => this.#close(socket, kept), keepBodyMs).unref();
    }
    addBytesWritten(socket, length - byNode);
    this.counters.kernel++;
    this.counters.kernelBytes += length;
    this.#report.changed();
  }

  /** The body kept open for `socket` if it is at `at` of `region` with `count` bytes left. */
  #continued(socket: Socket, region: LazyRegion, at: number, count: number): OpenBody | undefined {
    const kept = this.#bodies.get(socket);
    if (!kept) return undefined;
    if (
      kept.region === region &&
      kept.next === at &&
      kept.body.usable &&
      kept.body.remaining >= count
    ) {
      clearTimeout(kept.timer);
      kept.timer = undefined;
      return kept;
    }
    this.#close(socket, kept);
    return undefined;
  }

  /** Asks the owner's store for `region` from `offset` on, kept for `socket`'s next writes. */
  async #openBody(socket: Socket, region: LazyRegion, offset: number): Promise<OpenBody> {
    const runtime = this.#runtime;
    const descriptor = deriveDescriptor(
      region.descriptor,
      runtime.keyring.signing,
      offset,
      region.descriptor.length - offset,
      Date.now() + runtime.config.store.ttlMs,
    );
    const body = await this.#fetcher!.open(descriptor, false);
    this.counters.kernelRequests++;
    const kept: OpenBody = {
      region,
      next: offset,
      body,
      timer: undefined,
      onClose: () => this.#close(socket, kept),
    };
    socket.once('close', kept.onClose);
    this.#bodies.set(socket, kept);
    return kept;
  }

  /** Gives up a kept body: its store connection closes, the rest of its bytes unread. */
  #close(socket: Socket, kept: OpenBody): void {
    clearTimeout(kept.timer);
    socket.off('close', kept.onClose);
    kept.body.abandon();
    if (this.#bodies.get(socket) === kept) this.#bodies.delete(socket);
  }

  async #fetchThenWrite(socket: Socket, part: Extract<Part, { kind: 'kernel' }>): Promise<void> {
    await this.#runtime.materialize(part.view);
    await this.#writeParts(socket, [{ kind: 'node', entries: part.entries }]);
  }

  #countFallback(reason: PlainWriteFallback, why?: string): void {
    this.counters.fetched[reason] = (this.counters.fetched[reason] ?? 0) + 1;
    this.#report.changed();
    if (this.#logged.has(reason)) return;
    this.#logged.add(reason);
    this.#log.info(
      { reason, why: why ?? (reason === 'unavailable' ? this.#unavailable : undefined) },
      'a lazy buffer written to a plain socket is fetched first, not spliced',
    );
  }
}

const writers = new WeakMap<StreamRuntime, PlainWriter>();

/**
 * A write on a plain socket of `runtime`'s process (see the top of this file); `writeGeneric` is
 * Node's own `_writeGeneric`.
 */
export function writePlain(
  runtime: StreamRuntime,
  socket: Socket,
  writeGeneric: WriteGeneric,
  writev: boolean,
  data: unknown,
  encoding: string,
  cb: WriteCallback,
): void {
  let writer = writers.get(runtime);
  if (!writer) writers.set(runtime, (writer = new PlainWriter(runtime, writeGeneric, runtime.log)));
  writer.write(socket, writev, data, encoding, cb);
}

/** True when `next` starts where `run` ends, in the same region. */
function continues(run: LazyView, next: LazyView): boolean {
  return run.region === next.region && run.offset + run.length === next.offset;
}

/** A store connection of ODB's own: never interposed (no hello, no frames). */
function connectInternal(options: NetConnectOpts): Socket {
  const socket = new net.Socket(options as net.SocketConstructorOpts) as Socket & {
    [kOdbInternal]?: boolean;
  };
  socket[kOdbInternal] = true;
  // Never what keeps the application alive: a write in progress has the application's socket.
  socket.unref();
  return socket.connect(options);
}
