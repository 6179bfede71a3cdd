/**
 * Stream mode's answer to SIGTERM and SIGINT (docs/stream-mode.md, "Signals and shutdown").
 *
 * The application's own handling comes first, untouched: a signal the application has ever
 * listened for (`process.on('SIGTERM', …)`, also `once`, also by a dependency) is left entirely
 * to Node and the application, as without ODB — ODB then never keeps the process alive either.
 * For a signal the application never listened for, plain Node would die at once, cutting
 * in-flight responses and the payloads peers are still fetching from this process's store. ODB
 * drains instead:
 *   - every server stops accepting; HTTP connections end with their response in flight;
 *   - the process waits until those connections are gone, and its store holds no payload or has
 *     not been asked for one for `quietMs` (a peer still holding a descriptor fetches it soon),
 *     at most `timeoutMs`; then it exits with 0;
 *   - a second signal has the default action again: the process dies at once;
 *   - a process with nothing to drain (no server, no payload) dies of the signal at once, as
 *     without ODB.
 *
 * The signals are watched with a libuv signal handle of ODB's own (Node's `signal_wrap`, as
 * `process.on` uses it), not with a process listener: a listener would be visible to the
 * application (`process.listenerCount('SIGTERM')`), and libraries such as signal-exit re-raise a
 * signal to die of it only when no one else listens. The handle is unreferenced, so it never
 * keeps a process alive.
 *
 * While the application thread waits for a page of a lazy buffer (its JavaScript reads bytes still
 * being fetched), no JavaScript runs on it: a signal handler — ODB's or the application's — runs
 * once that read completes or fails (at most ODB_FETCH_TIMEOUT × (ODB_FETCH_RETRIES + 1)).
 */
import { constants } from 'node:os';
import type { Logger } from '../../core/log.js';
import type { StoreActivity } from '../agent/protocol.js';
import type { StreamConfig } from '../config/config.js';
import type { StreamRuntime } from './runtime.js';
import type { ServerRegistry } from './servers.js';

const watchedSignals = ['SIGTERM', 'SIGINT'] as const;
type WatchedSignal = (typeof watchedSignals)[number];

/** How often a drain looks at what is left. */
const drainPollMs = 50;

/** A libuv signal handle (Node's `signal_wrap` binding). */
interface SignalHandle {
  onsignal: ((signum: number) => void) | undefined;
  start(signum: number): number;
  unref(): void;
  close(): void;
}
type SignalHandleClass = new () => SignalHandle;

/**
 * Node's signal handle class, or why it is not available. `process.binding('signal_wrap')` warns
 * once (DEP0111) through `process.emitWarning`; the application must not see that warning, so it
 * is not emitted.
 */
function signalHandleClass(): SignalHandleClass | string {
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding(
      'signal_wrap',
    ) as { Signal?: unknown };
    return typeof binding.Signal === 'function'
      ? (binding.Signal as SignalHandleClass)
      : 'process.binding("signal_wrap") has no Signal class';
  } catch (err) {
    return `process.binding("signal_wrap"): ${(err as Error).message}`;
  } finally {
    process.emitWarning = emitWarning;
  }
}

export class GracefulExit {
  readonly #runtime: StreamRuntime;
  readonly #servers: ServerRegistry;
  readonly #config: StreamConfig['drain'];
  readonly #log: Logger;
  readonly #handles = new Map<WatchedSignal, SignalHandle>();
  #draining = false;

  private constructor(runtime: StreamRuntime, servers: ServerRegistry, log: Logger) {
    this.#runtime = runtime;
    this.#servers = servers;
    this.#config = runtime.config.drain;
    this.#log = log;
  }

  /**
   * Watches SIGTERM and SIGINT in this process (the main thread). Returns why it cannot, if it
   * cannot (the signals then act as without ODB).
   */
  static install(runtime: StreamRuntime, servers: ServerRegistry, log: Logger): string | undefined {
    if (runtime.config.drain.timeoutMs <= 0) return undefined; // switched off: nothing to say
    const Signal = signalHandleClass();
    if (typeof Signal === 'string') return Signal;
    const exit = new GracefulExit(runtime, servers, log);
    for (const signal of watchedSignals) {
      // A listener installed before ODB (another --import): that signal is the application's.
      if (process.listenerCount(signal) > 0) continue;
      const handle = new Signal();
      handle.unref();
      handle.onsignal = () => exit.#onSignal(signal);
      if (handle.start(constants.signals[signal]) !== 0) {
        handle.close();
        continue;
      }
      exit.#handles.set(signal, handle);
    }
    // Node's own 'newListener' listener (which starts the application's signal handle) was
    // registered at start-up, so it runs first: the signal is never without a handler here.
    process.on('newListener', (event: string | symbol) => {
      if (typeof event === 'string') exit.#stepAside(event as WatchedSignal);
    });
    return undefined;
  }

  /** The application listens for `signal` now: it is the application's from here on. */
  #stepAside(signal: WatchedSignal): void {
    const handle = this.#handles.get(signal);
    if (!handle) return;
    this.#handles.delete(signal);
    handle.close();
  }

  /** Closes every ODB signal handle: signals get their default action again. */
  #unwatch(): void {
    for (const handle of this.#handles.values()) handle.close();
    this.#handles.clear();
  }

  #onSignal(signal: WatchedSignal): void {
    // A second signal, or nothing to drain: the default action, as without ODB.
    if (this.#draining || (!this.#servers.busy && this.#runtime.ownPayloadsHeld === 0)) {
      this.#die(signal);
      return;
    }
    this.#draining = true;
    // Not at once: a second signal caught while the thread was busy is dispatched in this same
    // turn (and must find the handles open to be seen); later ones kill the process by default.
    setImmediate(() => this.#unwatch());
    void this.#drain(signal);
  }

  /** The store's activity; an agent that does not answer within a poll has nothing to wait for. */
  async #storeActivity(): Promise<StoreActivity> {
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<StoreActivity>((resolve) => {
      timer = setTimeout(() => resolve({ entries: 0, fetching: 0, fetches: 0 }), 10 * drainPollMs);
    });
    try {
      return await Promise.race([this.#runtime.storeActivity(), silent]);
    } finally {
      clearTimeout(timer);
    }
  }

  #die(signal: WatchedSignal): void {
    this.#unwatch();
    process.kill(process.pid, signal);
  }

  async #drain(signal: WatchedSignal): Promise<void> {
    const { timeoutMs, quietMs } = this.#config;
    const started = Date.now();
    this.#servers.drain();
    this.#log.info(
      { signal, ...this.#servers.progress(), timeoutMs },
      `${signal}: draining before exit (the application has no handler for it)`,
    );
    // Referenced: the drain keeps the process up until it is done.
    const keepAlive = setInterval(() => {}, 1000);
    let fetches = -1;
    let quietSince = started;
    for (;;) {
      this.#servers.sweep();
      const progress = this.#servers.progress();
      const store = await this.#storeActivity();
      const now = Date.now();
      // The store's quiet time counts once the servers are done (their responses make payloads).
      if (progress.servers > 0 || store.fetching > 0 || store.fetches !== fetches) quietSince = now;
      fetches = store.fetches;
      if (progress.servers === 0 && (store.entries === 0 || now - quietSince >= quietMs)) {
        this.#log.info({ signal, ms: now - started, payloadsLeft: store.entries }, 'drained');
        break;
      }
      if (now - started >= timeoutMs) {
        this.#log.warn(
          { signal, ...progress, payloadsLeft: store.entries },
          `drain timeout (${timeoutMs} ms, ODB_DRAIN_TIMEOUT): cutting what is left`,
        );
        this.#servers.destroyAll();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, drainPollMs));
    }
    clearInterval(keepAlive);
    process.exit(0);
  }
}
