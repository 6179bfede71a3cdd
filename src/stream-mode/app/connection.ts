/**
 * One socket in stream mode. The per-socket state machine of the thesis, from the connection's
 * point of view:
 *
 *   sniffing        accepted on an ODB port; the first bytes decide: a hello → odb (answered),
 *                   anything else → plain, those bytes delivered unchanged
 *   deciding        we connected to a peer not known yet (`ODB_CONNECT=*`) and wait, briefly, for
 *                   the probe's verdict; application writes wait for it; bytes from the peer
 *                   first → plain (it speaks first, so it will not answer a hello)
 *   unsaid          we connected to an ODB peer and have said nothing yet: the hello goes out
 *                   just before the application's first write through JavaScript. Code that
 *                   takes the socket's native handle instead (HTTP/2, a TLS wrap) never writes
 *                   here, so the connection stays plain, byte for byte; bytes from the peer
 *                   first → plain, as in deciding
 *   awaiting-hello  we said hello; application writes wait for the answer; an answer that is not
 *                   a hello fails the connection (the peer was configured or learned as ODB)
 *   odb             every byte both ways is framed; received R bytes are delivered as they come,
 *                   V descriptors as lazy buffers; writes become R or V frames
 *   plain           nothing ODB: bytes pass unchanged (lazy buffers written here are fetched first)
 *
 * The read side replaces the socket's `push` (what Node's stream code calls with each read); the
 * write side is called from the global `_writeGeneric` interposition.
 */
import type { Socket } from 'node:net';
import { OdbError, isOdbError } from '../../core/errors.js';
import { decodeDescriptor, verifyDescriptor, type Descriptor } from '../../protocol/descriptor.js';
import { FrameDecoder, encodeVirtualFrame, frameReal } from '../../protocol/frame.js';
import { flagsOf, helloFlags, helloFrame, readHello } from '../../protocol/hello.js';
import { httpBodyLength, httpHeadLength } from './http-head.js';
import { PayloadGatherer } from './payload-gatherer.js';
import type { LazyView, StreamRuntime } from './runtime.js';
import { writePlain, type WriteCallback, type WriteGeneric } from './plain-write.js';
import { kOdbConnection } from './symbols.js';

type Mode = 'sniffing' | 'deciding' | 'unsaid' | 'awaiting-hello' | 'odb' | 'plain';
type Push = (chunk: Buffer | null, encoding?: BufferEncoding) => boolean;
type DestroyHook = (this: Socket, err: Error | null, cb: (err: Error | null) => void) => void;

/** The error Node gives writes on a destroyed stream (its class is internal). */
function streamDestroyed(): Error {
  // Not of the registry: the application must observe what Node gives it without ODB.
  // eslint-disable-next-line no-restricted-syntax -- Node's ERR_STREAM_DESTROYED, code and message
  return Object.assign(new Error('Cannot call write after a stream was destroyed'), {
    code: 'ERR_STREAM_DESTROYED',
  });
}

/** The chunks of a `_writeGeneric` call, as buffers. */
export function chunksOf(writev: boolean, data: unknown, encoding: string): Buffer[] {
  const one = (chunk: unknown, enc: string): Buffer =>
    typeof chunk === 'string'
      ? Buffer.from(chunk, enc as BufferEncoding)
      : Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk as Uint8Array);
  if (!writev) return [one(data, encoding)];
  return (data as { chunk: unknown; encoding: string }[]).map((e) => one(e.chunk, e.encoding));
}

/** Longest wait of an accepted connection's first application write for the peer's hello. */
const helloWaitMs = 50;

/** How long an answered probe may stay open before it is cut. */
const probeLingerMs = 1000;

/** How much a plain socket hands on per read (libuv reads TCP into 64 KiB buffers). */
const plainReadBytes = 64 * 1024;

/**
 * A received payload as the reads a plain socket would have delivered: slices of at most 64 KiB
 * (a lazy buffer's slices are lazy too; whoever forwards them rejoins them, see #frames).
 */
function readsOf(bytes: Buffer): Buffer[] {
  if (bytes.length <= plainReadBytes) return [bytes];
  const reads: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += plainReadBytes)
    reads.push(bytes.subarray(at, Math.min(bytes.length, at + plainReadBytes)));
  return reads;
}

/** Contiguous views of one lazy region being forwarded as one: the joined view and its chunks. */
interface Forward {
  readonly view: LazyView;
  readonly chunks: readonly Buffer[];
}

/** `forward` extended by `view` (of `chunk`) if it continues it, else undefined. */
function extended(
  forward: Forward | undefined,
  view: LazyView,
  chunk: Buffer,
): Forward | undefined {
  const last = forward?.view;
  if (!last || last.region !== view.region || last.offset + last.length !== view.offset)
    return undefined;
  return {
    view: { region: view.region, offset: last.offset, length: last.length + view.length },
    chunks: [...forward.chunks, chunk],
  };
}

/** `_writeGeneric` arguments that write `buffers` in one writev. */
function asWritev(
  buffers: Buffer[],
): { chunk: Buffer; encoding: string }[] & { allBuffers?: boolean } {
  const data: { chunk: Buffer; encoding: string }[] & { allBuffers?: boolean } = buffers.map(
    (chunk) => ({ chunk, encoding: 'buffer' }),
  );
  data.allBuffers = true;
  return data;
}

export class OdbConnection {
  #mode: Mode;
  readonly #socket: Socket;
  readonly #runtime: StreamRuntime;
  readonly #decoder = new FrameDecoder();
  readonly #push: Push;
  readonly #writeGeneric: WriteGeneric;
  #sniffed: Buffer = Buffer.alloc(0);
  /** Application writes waiting for the hello's answer (or the peer's first bytes). */
  #held: { readonly run: () => void; readonly cb: WriteCallback }[] = [];
  /** Consecutive large writes gathered into one payload; undefined when gathering is off. */
  readonly #gatherer: PayloadGatherer | undefined;
  /**
   * Body bytes still to come of the HTTP message being written, when its head announced a
   * Content-Length: at 0 the message is complete and what was gathered goes out.
   */
  #bodyRemaining: number | undefined;
  /** Called when the peer does not answer our hello (see {@link OdbConnection.connect}). */
  #onRefused: (() => void) | undefined;
  /**
   * A forwarded view held back for the next write: a pipe writes the 64 KiB reads of one received
   * payload one by one (see readsOf), and contiguous ones travel as one derived descriptor.
   */
  #forward: Forward | undefined;
  #forwardTimer: NodeJS.Immediate | undefined;
  /**
   * An accepted connection not yet handed to the application (see {@link OdbConnection.accept}):
   * what hands it over, the timer that does it at the latest, and the error listener that stands
   * in for the application's until then.
   */
  #introduce: (() => void) | undefined;
  #introduceTimer: NodeJS.Timeout | undefined;
  readonly #quietErrors = (): void => {};

  private constructor(
    socket: Socket,
    runtime: StreamRuntime,
    mode: Mode,
    writeGeneric: WriteGeneric,
  ) {
    this.#socket = socket;
    this.#runtime = runtime;
    this.#mode = mode;
    this.#writeGeneric = writeGeneric;
    this.#push = socket.push.bind(socket) as Push;
    (socket as unknown as Record<symbol, OdbConnection>)[kOdbConnection] = this;
    socket.push = ((chunk: Buffer | null, encoding?: BufferEncoding) =>
      this.#onRead(chunk, encoding)) as Socket['push'];
    const gather = runtime.config.gather;
    if (gather.maxBytes >= runtime.config.thresholdBytes) {
      this.#gatherer = new PayloadGatherer(runtime.ownMemory, gather.maxBytes, gather.waitMs, () =>
        this.#sendHeld(),
      );
    }
    // Node ends a socket with `_final` (a shutdown), which never passes through `_writeGeneric`:
    // what was gathered or held back goes first. A destroyed socket drops it, as it drops queued
    // writes.
    const final = (socket as unknown as { _final: (cb: WriteCallback) => void })._final;
    Object.assign(socket, {
      _final: (cb: WriteCallback): void => {
        this.#sendHeld();
        final.call(socket, cb);
      },
    });
    // A write whose callback has run is the kernel's in plain Node, even if the socket is
    // destroyed right after: what was gathered or held back goes out before the handle closes
    // (as far as the kernel takes it at once, like any write).
    const destroy = (socket as unknown as { _destroy: DestroyHook })._destroy;
    Object.assign(socket, {
      _destroy: (err: Error | null, cb: (err: Error | null) => void): void => {
        this.#sendHeld();
        destroy.call(socket, err, cb);
      },
    });
    socket.once('close', () => {
      clearTimeout(this.#introduceTimer);
      this.#gatherer?.discard();
      this.#forward = undefined;
      clearImmediate(this.#forwardTimer);
      // Writes still held never reached the socket: they fail, as writes on a destroyed stream do.
      const held = this.#held;
      this.#held = [];
      for (const write of held) write.cb(streamDestroyed());
    });
  }

  /**
   * An accepted socket on an ODB port: wait for the peer's first bytes. `introduce` hands the
   * connection to the application (emits its 'connection'): once the first bytes are known not to
   * be a probe's hello, or after helloWaitMs without any (a peer that waits for a banner), but
   * never for a probe, which the application would otherwise see as a connection that carries
   * nothing (a server counting its connections would count it).
   */
  static accept(
    socket: Socket,
    runtime: StreamRuntime,
    writeGeneric: WriteGeneric,
    introduce: () => void,
  ): OdbConnection {
    const connection = new OdbConnection(socket, runtime, 'sniffing', writeGeneric);
    connection.#introduce = introduce;
    connection.#introduceTimer = setTimeout(() => connection.#sniffDeadline(), helloWaitMs);
    // Until the application has the socket, its errors (a reset) must not be uncaught; a socket
    // that fails before it is introduced is never introduced.
    socket.on('error', connection.#quietErrors);
    return connection;
  }

  /**
   * helloWaitMs after accept: a peer that has not completed a hello by now is not saying one (an
   * ODB peer writes it whole): what it sent is the application's, and the connection is handed
   * over either way.
   */
  #sniffDeadline(): void {
    if (this.#mode === 'sniffing' && this.#sniffed.length > 0) {
      const sniffed = this.#sniffed;
      this.#sniffed = Buffer.alloc(0);
      this.#plain();
      this.#push(sniffed);
    }
    this.#introduceNow();
  }

  /** Hands an accepted connection to the application, once. */
  #introduceNow(): void {
    const introduce = this.#introduce;
    if (!introduce) return;
    this.#introduce = undefined;
    clearTimeout(this.#introduceTimer);
    this.#socket.off('error', this.#quietErrors);
    if (!this.#socket.destroyed) introduce();
  }

  /**
   * A connected socket to an ODB peer: hello before the application's first write. `onRefused`:
   * the peer answered with something else, or closed, before answering.
   */
  static connect(
    socket: Socket,
    runtime: StreamRuntime,
    writeGeneric: WriteGeneric,
    onRefused?: () => void,
  ): OdbConnection {
    const connection = new OdbConnection(socket, runtime, 'unsaid', writeGeneric);
    connection.#onRefused = onRefused;
    return connection;
  }

  /**
   * A connected socket to a peer whose verdict is still coming: hold the application's writes
   * until `verdict` settles, then say hello (true) or go plain (false).
   */
  static decide(
    socket: Socket,
    runtime: StreamRuntime,
    writeGeneric: WriteGeneric,
    verdict: Promise<boolean>,
    onRefused?: () => void,
  ): OdbConnection {
    const connection = new OdbConnection(socket, runtime, 'deciding', writeGeneric);
    connection.#onRefused = onRefused;
    void verdict.then((odb) => connection.#decided(odb));
    return connection;
  }

  #decided(odb: boolean): void {
    // The peer spoke first (now plain), or the socket is gone: nothing to decide any more.
    if (this.#mode !== 'deciding' || this.#socket.destroyed) return;
    if (!odb) return this.#plain();
    if (this.#held.length === 0) this.#mode = 'unsaid';
    else this.#sayHello();
  }

  /** Opens the ODB conversation: the application's writes wait for the answer. */
  #sayHello(): void {
    this.#mode = 'awaiting-hello';
    this.#raw(helloFrame());
  }

  /**
   * Native code is taking the socket's handle (a TLS wrap): true if the connection may leave ODB
   * for good because nothing ODB was said or heard on it, so the native reader and writer see
   * the bytes as they are. False: the socket already speaks (or is opening) ODB, and whatever
   * wraps it must go through its JavaScript stream (see interpose.ts).
   */
  yieldToNative(): boolean {
    if (this.#mode === 'plain') return true;
    if ((this.#mode === 'unsaid' || this.#mode === 'sniffing') && this.#sniffed.length === 0) {
      this.#plain();
      return true;
    }
    return false;
  }

  get mode(): Mode {
    return this.#mode;
  }

  /** Writes bytes outside the application's stream (hello): libuv keeps them in order. */
  #raw(bytes: Buffer): void {
    this.#writeGeneric.call(this.#socket, false, bytes, 'buffer', () => {});
  }

  #fail(err: OdbError): false {
    this.#runtime.log.warn({ code: err.code }, `odb connection closed: ${err.message}`);
    this.#socket.destroy(err);
    return false;
  }

  // ---- read side -------------------------------------------------------------------------

  #onRead(chunk: Buffer | null, encoding?: BufferEncoding): boolean {
    if (chunk === null) {
      if (this.#mode === 'odb') {
        try {
          this.#decoder.end();
        } catch (err) {
          return this.#fail(err as OdbError);
        }
      } else {
        // Closed before answering our hello: that peer does not speak ODB (any more).
        if (this.#mode === 'awaiting-hello') this.#onRefused?.();
        if (this.#mode !== 'plain') {
          const sniffed = this.#sniffed;
          this.#sniffed = Buffer.alloc(0);
          this.#plain();
          if (sniffed.length > 0) this.#push(sniffed);
        }
        this.#introduceNow();
      }
      return this.#push(null);
    }
    switch (this.#mode) {
      case 'plain':
        return this.#push(chunk, encoding);
      case 'odb':
        return this.#decode(chunk);
      case 'deciding':
      case 'unsaid':
        // The peer speaks first: it is not waiting for a hello, and will not answer one.
        this.#plain();
        return this.#push(chunk, encoding);
      case 'sniffing':
      case 'awaiting-hello':
        return this.#handshake(chunk);
    }
  }

  #handshake(chunk: Buffer): boolean {
    this.#sniffed = this.#sniffed.length ? Buffer.concat([this.#sniffed, chunk]) : chunk;
    const read = readHello(this.#sniffed);
    if (read === 'incomplete') return true;
    const bytes = this.#sniffed;
    this.#sniffed = Buffer.alloc(0);
    // An acceptor takes a hello that is not an answer; a connector only an answer (a plain echo
    // server sends our own hello back).
    const answer = read !== 'not-hello' && (flagsOf(bytes) & helloFlags.answer) !== 0;
    const hello =
      read === 'not-hello' || answer !== (this.#mode === 'awaiting-hello') ? 'not-hello' : read;
    if (hello === 'not-hello') {
      if (this.#mode === 'awaiting-hello') {
        this.#onRefused?.();
        return this.#fail(
          new OdbError(
            'ODB_ERR_PROTOCOL',
            'the peer did not answer the ODB hello (is it running stream mode?)',
          ),
        );
      }
      this.#plain();
      this.#introduceNow();
      return this.#push(bytes);
    }
    if (this.#mode === 'sniffing' && (flagsOf(bytes) & helloFlags.probe) !== 0) {
      // A probe: answered, and ended; the application never sees it.
      clearTimeout(this.#introduceTimer);
      this.#introduce = undefined;
      this.#mode = 'plain';
      this.#raw(helloFrame(helloFlags.answer));
      this.#socket.end();
      // The application never sees this socket, so none of its timeouts applies: a peer that
      // keeps it open after the answer is cut.
      const linger = setTimeout(() => this.#socket.destroy(), probeLingerMs).unref();
      this.#socket.once('close', () => clearTimeout(linger));
      return true;
    }
    // Answered and in ODB mode before the application gets the connection: what it writes at
    // once must be framed, after the answer.
    const accepting = this.#mode === 'sniffing';
    if (accepting) this.#raw(helloFrame(helloFlags.answer));
    this.#mode = 'odb';
    this.#release();
    if (accepting) this.#introduceNow();
    return hello < bytes.length ? this.#decode(bytes.subarray(hello)) : true;
  }

  #plain(): void {
    this.#mode = 'plain';
    this.#release();
  }

  #release(): void {
    const held = this.#held;
    this.#held = [];
    for (const write of held) write.run();
  }

  #hold(writev: boolean, data: unknown, encoding: string, cb: WriteCallback): void {
    this.#held.push({ run: () => this.write(writev, data, encoding, cb), cb });
  }

  /**
   * Decodes one read. The bytes are handed on only after decoding, outside the decoder's error
   * handling: the application's 'data' handlers run inside `push`, and their exceptions must
   * surface exactly as they would without ODB, not end the connection as a protocol error. R
   * bytes that arrived in one read are handed on as one chunk, as a plain socket's read would
   * be (a sender's writev of a chunked HTTP message is several R frames, not several reads).
   */
  #decode(chunk: Buffer): boolean {
    const delivered: Buffer[] = [];
    const real: Buffer[] = [];
    const flushReal = (): void => {
      if (real.length === 0) return;
      delivered.push(real.length === 1 ? real[0]! : Buffer.concat(real));
      real.length = 0;
    };
    let failure: OdbError | undefined;
    try {
      this.#decoder.push(chunk, (event) => {
        if (event.type === 'real') {
          if (event.bytes.length > 0) real.push(event.bytes);
        } else if (event.type === 'virtual') {
          const descriptor = decodeDescriptor(event.descriptor);
          verifyDescriptor(descriptor, this.#runtime.keyring, Date.now());
          flushReal();
          delivered.push(...readsOf(this.#runtime.receive(descriptor)));
        } else {
          throw new OdbError('ODB_ERR_PROTOCOL', 'hello in the middle of a connection');
        }
      });
    } catch (err) {
      failure = isOdbError(err)
        ? err
        : new OdbError('ODB_ERR_PROTOCOL', String(err), { cause: err });
    }
    flushReal();
    let result = true;
    // What was decoded before a failure is the peer's too, and is delivered before the close.
    for (const bytes of delivered) result = this.#push(bytes) && result;
    return failure ? this.#fail(failure) : result;
  }

  // ---- write side ------------------------------------------------------------------------

  /** Called for every application write on this socket (see interpose.ts). */
  write(writev: boolean, data: unknown, encoding: string, cb: WriteCallback): void {
    switch (this.#mode) {
      case 'unsaid':
        this.#sayHello();
        this.#hold(writev, data, encoding, cb);
        return;
      case 'deciding':
      case 'awaiting-hello':
        this.#hold(writev, data, encoding, cb);
        return;
      case 'sniffing':
        // The application has the connection only once the peer's first bytes came, or
        // helloWaitMs passed without any (see accept): the peer is not saying hello, or not yet.
        // Bytes that may be the start of one wait for the rest (at most until that deadline).
        if (this.#sniffed.length > 0) return this.#hold(writev, data, encoding, cb);
        this.#plain();
        writePlain(this.#runtime, this.#socket, this.#writeGeneric, writev, data, encoding, cb);
        return;
      case 'plain':
        writePlain(this.#runtime, this.#socket, this.#writeGeneric, writev, data, encoding, cb);
        return;
      case 'odb':
        this.#writeFramed(chunksOf(writev, data, encoding), cb);
        return;
    }
  }

  #writeFramed(chunks: Buffer[], cb: WriteCallback): void {
    // Lazy chunks that cannot be forwarded as descriptors are fetched first (without blocking),
    // since they will be copied. The decision is taken once here and framing follows it.
    const runtime = this.#runtime;
    const threshold = runtime.config.thresholdBytes;
    const forwardable = new Map<Buffer, LazyView>();
    const toFetch: LazyView[] = [];
    // A received payload is read in slices of at most 64 KiB (readsOf): a whole slice counts as
    // large whatever the threshold, and so does a smaller one continuing the one before it (the
    // payload's last slice), or a payload would be fetched for its tail.
    const large = Math.min(threshold, plainReadBytes);
    let last = this.#forward?.view;
    for (const chunk of chunks) {
      const view = runtime.lazyView(chunk);
      if (!view) continue;
      const continues = last?.region === view.region && last.offset + last.length === view.offset;
      last = view;
      if (chunk.length < large && !continues) continue;
      if (runtime.canForward(view)) forwardable.set(chunk, view);
      else if (!runtime.isMaterialized(view)) toFetch.push(view);
    }
    if (toFetch.length === 0 && chunks.length === 1 && this.#holdForward(chunks[0]!, forwardable))
      return cb();
    const write = (): void => {
      let frames: Buffer[];
      try {
        frames = this.#frames(chunks, forwardable);
      } catch (err) {
        this.#socket.destroy(err as Error);
        return cb(err as Error);
      }
      // Everything was gathered: the bytes are ours, the application may go on writing.
      if (frames.length === 0) return cb();
      this.#writeGeneric.call(this.#socket, true, asWritev(frames), '', cb);
    };
    if (toFetch.length === 0) return write();
    Promise.all(toFetch.map((v) => runtime.materialize(v))).then(
      () => {
        // A fetch may have given back the reference of a region another chunk forwards from.
        for (const [chunk, view] of forwardable)
          if (!runtime.canForward(view)) forwardable.delete(chunk);
        write();
      },
      (err: Error) => cb(err),
    );
  }

  /**
   * The frames of `chunks`; `forwardable`: the lazy chunks that travel as derived descriptors.
   * Large own bytes are gathered rather than framed at once, so frames may be fewer than chunks,
   * or none; gathered bytes go out before any later frame, so the stream keeps its order.
   */
  #frames(chunks: Buffer[], forwardable: ReadonlyMap<Buffer, LazyView>): Buffer[] {
    const runtime = this.#runtime;
    const threshold = runtime.config.thresholdBytes;
    const out: Buffer[] = [];
    // Contiguous forwarded views of one region (a pipe writing the reads of one received
    // descriptor) travel as one derived descriptor, the view held back by the last write first.
    let forward = this.#takeHeldForward();
    const sendForward = (): void => {
      if (!forward) return;
      this.#forwardFrames(forward, out);
      forward = undefined;
    };
    for (let chunk of chunks) {
      const view = forwardable.get(chunk);
      if (view) {
        this.#takeGathered(out);
        const joined = extended(forward, view, chunk);
        if (!joined) sendForward();
        forward = joined ?? { view, chunks: [chunk] };
        this.#countBody(chunk.length);
        continue;
      }
      sendForward();
      const head = httpHeadLength(chunk);
      if (head > 0) {
        this.#real(chunk.subarray(0, head), out);
        this.#bodyRemaining = httpBodyLength(chunk.subarray(0, head));
        chunk = chunk.subarray(head);
      }
      if (chunk.length < threshold) this.#real(chunk, out);
      else this.#own(chunk, out);
      this.#countBody(chunk.length);
    }
    // A write that ends with a forwarded view (an HTTP head and the body's first read) holds it
    // back as #holdForward does, so the body's next reads join it: one descriptor, not two.
    if (forward && this.#mayHold(forward.view)) this.#holdBack(forward);
    else sendForward();
    if (this.#bodyRemaining === 0) this.#takeGathered(out);
    else this.#gatherer?.wait();
    return out;
  }

  /**
   * Holds a forwardable `view` back for the next write if it continues the held one (or none is
   * held), so that the write completes at once and the next read of the same payload joins it.
   * It goes out at the end of its payload, of its HTTP message, or of this turn of the event loop.
   */
  #holdForward(chunk: Buffer, forwardable: ReadonlyMap<Buffer, LazyView>): boolean {
    const view = forwardable.get(chunk);
    if (!view || this.#gatherer?.gathered) return false;
    const held = this.#forward;
    const joined = held ? extended(held, view, chunk) : { view, chunks: [chunk] };
    if (!joined) return false;
    this.#countBody(view.length);
    if (this.#mayHold(joined.view)) this.#holdBack(joined);
    else {
      this.#forward = joined;
      this.#sendHeld();
    }
    return true;
  }

  /** True unless `view` reaches its payload's end or completes the HTTP message. */
  #mayHold(view: LazyView): boolean {
    const end = view.offset + view.length === view.region.descriptor.length;
    return !end && this.#bodyRemaining !== 0;
  }

  /** Holds `forward` back until the next write, or the end of this turn of the event loop. */
  #holdBack(forward: Forward): void {
    this.#forward = forward;
    this.#forwardTimer ??= setImmediate(() => this.#sendHeld());
  }

  #takeHeldForward(): Forward | undefined {
    const held = this.#forward;
    this.#forward = undefined;
    clearImmediate(this.#forwardTimer);
    this.#forwardTimer = undefined;
    return held;
  }

  /**
   * Frames `forward` into `out`: a derived descriptor, or, when the owner's reference was
   * given back since (the same payload was fetched whole to be written elsewhere), the fetched
   * bytes as our own. The write may have completed already (held back), so the pages must still
   * be the owner's bytes: if the application wrote into them since, the connection ends rather
   * than send bytes it did not write.
   */
  #forwardFrames(forward: Forward, out: Buffer[]): void {
    const runtime = this.#runtime;
    if (runtime.canForward(forward.view)) {
      out.push(...encodeVirtualFrame(runtime.forward(forward.view).bytes));
      return;
    }
    if (!runtime.isUnchanged(forward.view)) {
      throw new OdbError(
        'ODB_ERR_SOURCE_CHANGED',
        'a buffer was changed after its write completed',
      );
    }
    const bytes = forward.chunks.length === 1 ? forward.chunks[0]! : Buffer.concat(forward.chunks);
    const descriptor = runtime.registerOwn(bytes);
    if (descriptor) this.#virtual(descriptor, bytes.length, out);
    else this.#real(bytes, out);
  }

  #countBody(length: number): void {
    if (this.#bodyRemaining !== undefined)
      this.#bodyRemaining = Math.max(0, this.#bodyRemaining - length);
  }

  /** Frames `bytes` as R bytes, after anything gathered before them. */
  #real(bytes: Buffer, out: Buffer[]): void {
    if (bytes.length === 0) return;
    this.#takeGathered(out);
    const stats = this.#runtime.stats;
    stats.sentReal++;
    stats.sentRealBytes += bytes.length;
    out.push(...frameReal(bytes));
  }

  /** Large bytes this process sends as its own payload: gathered, or framed on their own. */
  #own(chunk: Buffer, out: Buffer[]): void {
    const gatherer = this.#gatherer;
    if (gatherer) {
      if (gatherer.add(chunk, this.#bodyRemaining)) return;
      this.#takeGathered(out);
      if (gatherer.add(chunk, this.#bodyRemaining)) return;
    }
    // Larger than a payload may grow: a payload of its own.
    const descriptor = this.#runtime.registerOwn(chunk);
    if (descriptor) this.#virtual(descriptor, chunk.length, out);
    else this.#real(chunk, out);
  }

  /** Frames what was gathered, if anything: one descriptor, or R bytes past the store budget. */
  #takeGathered(out: Buffer[]): void {
    const gathered = this.#gatherer?.take();
    if (!gathered) return;
    const descriptor = this.#runtime.registerOwnMemory(gathered.memory, gathered.length);
    if (descriptor) this.#virtual(descriptor, gathered.length, out);
    else this.#real(gathered.memory.reclaim(gathered.length), out);
  }

  /** A V frame for `descriptor` of `length` own bytes. */
  #virtual(descriptor: Descriptor, length: number, out: Buffer[]): void {
    const stats = this.#runtime.stats;
    stats.sentVirtual++;
    stats.sentVirtualBytes += length;
    out.push(...encodeVirtualFrame(descriptor.bytes));
  }

  /** Sends what was held back or gathered now (the wait is over, or the socket ends). */
  #sendHeld(): void {
    const out: Buffer[] = [];
    const forward = this.#takeHeldForward();
    try {
      if (forward) this.#forwardFrames(forward, out);
    } catch (err) {
      this.#socket.destroy(err as Error);
      return;
    }
    this.#takeGathered(out);
    if (out.length === 0) return;
    this.#writeGeneric.call(this.#socket, true, asWritev(out), '', (err) => {
      // The application's writes already completed: a failure here can only end the connection.
      if (err) this.#socket.destroy(err);
    });
  }
}
