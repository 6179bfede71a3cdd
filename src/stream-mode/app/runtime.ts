/**
 * The stream-mode runtime of one process, on the application's thread: starts the agent worker,
 * registers payloads this process sends as descriptors, creates lazy buffers for descriptors it
 * receives, and answers what may be forwarded as a descriptor without fetching.
 */
import { randomFillSync } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { OdbError } from '../../core/errors.js';
import type { LazyBinding, LazyFeatures } from '../../native/binding.js';
import { loadLazyBinding } from '../../native/binding.js';
import { parseKeyFile, readKeyFile, type Keyring } from '../../core/keys/keyring.js';
import { silentLogger, type Logger } from '../../core/log.js';
import {
  deriveDescriptor,
  descriptorToText,
  payloadIdBytes,
  payloadIdHex,
  signDescriptor,
  type Descriptor,
} from '../../protocol/descriptor.js';
import type {
  AgentEvent,
  AgentMessage,
  AgentSettings,
  OverBudgetCounters,
  PeerCounters,
  PlainWriteCounters,
  StoreActivity,
} from '../agent/protocol.js';
import { CollectionPacer, obtainGc } from '../memory/collector.js';
import { PacedReport } from './paced-report.js';
import { OwnPayloadAllocator, type OwnPayloadMemory } from '../memory/own-payload.js';
import type { StreamConfig } from '../config/config.js';
import { startAgent } from './agent-thread.js';

/** What the registry knows of a lazy buffer's memory. */
interface LazyRegion {
  readonly id: number;
  readonly descriptor: Descriptor;
  /** Every byte was fetched and the owner's reference given back: forward copies, not this. */
  remoteReleased: boolean;
}

/**
 * A region the registry watches: to nudge the GC and to fetch long-held ones before the TTL. It
 * holds no reference to the Buffer, weak or not: V8 keeps the targets of WeakRefs and
 * FinalizationRegistry cells alive through scavenges, so only a full collection could free them.
 * The addon reports the regions it finalised instead (takeGone).
 */
interface LiveRegion {
  readonly region: LazyRegion;
  readonly createdAt: number;
}

/**
 * Lazy regions alive, or their bytes, before the runtime asks V8 for a full collection, at most
 * once per gcIntervalMs. The bytes matter more: each region holds a payload in its owner's store,
 * and an owner whose budget is spent sends its writes real (every tier then copies them), so the
 * holders must give references back well within the owners' budgets (256 MiB by default). At
 * 1 MiB per body a count of 512 let 500 MiB wait for V8's own collections. Since V8 stopped
 * collecting fully by itself in the holders (native/lazy.cc, CreateRegion), regions promoted
 * while in flight wait for these collections alone: 96 MiB of them let the owner of the
 * 100 000-request soak peak at 1.25-1.32x its RSS after warm-up. 48 MiB stays above what dies
 * young between two scavenges at 1 MiB per body (about 30 MiB).
 */
const liveRegionsBeforeGc = 512;
const liveBytesBeforeGc = 48 * 1024 * 1024;
const gcIntervalMs = 500;
const idleGcMs = 500;
const maxIdleGcMs = 8000;
/** Time for a collection's finalizers (immediates) to have run. */
const finalizersSettleMs = 100;
/** A Buffer (or a view into one) whose bytes come from a lazy region. */
export interface LazyView {
  readonly region: LazyRegion;
  /** Offset of the view within the region. */
  readonly offset: number;
  readonly length: number;
}

/** Counters; exposed in logs and tests. */
export interface StreamStats {
  sentVirtual: number;
  sentVirtualBytes: number;
  forwarded: number;
  forwardedBytes: number;
  sentReal: number;
  sentRealBytes: number;
  receivedVirtual: number;
  receivedVirtualBytes: number;
  materialized: number;
  fetchFailures: number;
}

export class StreamRuntime {
  readonly config: StreamConfig;
  readonly keyring: Keyring;
  readonly endpoint: string;
  /** The lazy-buffer addon, when userfaultfd works here; else virtual data is fetched on arrival. */
  readonly lazy: LazyBinding | undefined;
  readonly features: LazyFeatures | undefined;
  readonly lazyReason: string | undefined;
  /** Memory for the payloads this process sends (native when the addon loaded). */
  readonly ownMemory: OwnPayloadAllocator;
  readonly stats: StreamStats = {
    sentVirtual: 0,
    sentVirtualBytes: 0,
    forwarded: 0,
    forwardedBytes: 0,
    sentReal: 0,
    sentRealBytes: 0,
    receivedVirtual: 0,
    receivedVirtualBytes: 0,
    materialized: 0,
    fetchFailures: 0,
  };
  readonly log: Logger;
  readonly #worker: Worker;
  readonly #regions = new WeakMap<ArrayBufferLike, LazyRegion>();
  /** Own payloads still held by the agent, by hex id: their bytes resolve locally. */
  readonly #own = new Map<string, OwnPayloadMemory>();
  #ownBytes = 0;
  #nextRequest = 1;
  readonly #pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  readonly #activityRequests = new Map<number, (activity: StoreActivity) => void>();
  readonly #live = new Map<number, LiveRegion>();
  /**
   * Every full collection this thread asks for. Noted: memory here that only a collection frees
   * (regions fetched whole; the HTTP parser's copies of the zeros it is fed; without the addon,
   * own payloads the store dropped, whose shared memory waits for this isolate too). V8 lets
   * external memory grow by 64 MB or more before it collects, which a tier moving large bodies
   * reaches several times a second.
   */
  readonly #collections = new CollectionPacer(obtainGc());
  #lastGc = 0;
  /** Bytes of the regions in #live. */
  #liveBytes = 0;
  readonly #overBudget: OverBudgetCounters = { writes: 0, bytes: 0 };
  readonly #overBudgetReport = new PacedReport(() =>
    this.#post({ type: 'over-budget', counters: { ...this.#overBudget } }),
  );
  #idleTimer: NodeJS.Timeout | undefined;
  #idleGcDelay = idleGcMs;

  private constructor(
    config: StreamConfig,
    keyring: Keyring,
    worker: Worker,
    ready: Extract<AgentEvent, { type: 'ready' }>,
    log: Logger,
  ) {
    this.config = config;
    this.keyring = keyring;
    this.endpoint = ready.endpoint;
    this.features = ready.lazy ?? undefined;
    this.lazyReason = ready.lazyReason;
    const loaded = loadLazyBinding(config.native);
    const binding = 'binding' in loaded ? loaded.binding : undefined;
    this.lazy = ready.lazy ? binding : undefined;
    // Own payloads need the addon, not userfaultfd.
    this.ownMemory = new OwnPayloadAllocator(binding);
    this.log = log;
    this.#worker = worker;
    worker.on('message', (event: AgentEvent) => this.#onEvent(event));
    // After the listener: adding a 'message' listener refs the worker's port again, and the agent
    // must never keep a program alive that would otherwise exit.
    worker.unref();
    const safety = setInterval(() => this.#fetchLongHeld(), Math.max(1000, config.store.ttlMs / 4));
    safety.unref();
  }

  /**
   * Owners keep payloads while holders keep references, which are given back when lazy buffers
   * are garbage-collected. V8 may not collect for a long time in a quiet process, so the runtime
   * asks for a collection when many regions are alive, or when none was created for a while.
   * Most regions are collected by V8's own scavenges; those still alive here when they are many
   * were promoted or are held, and only a full collection frees them.
   */
  #nudgeGc(): void {
    this.#forgetCollected();
    const now = Date.now();
    const many = this.#live.size >= liveRegionsBeforeGc || this.#liveBytes >= liveBytesBeforeGc;
    if (many && this.#collections.available && now - this.#lastGc >= gcIntervalMs) {
      this.#lastGc = now;
      this.#collections.collect();
    }
    this.#idleGcDelay = idleGcMs;
    if (this.#idleTimer) this.#idleTimer.refresh();
    else this.#armIdleGc();
  }

  /**
   * Forgets the regions the addon finalised since the last call and tells the agent, which gives
   * their references back: on the port, after any `retain` posted for a view of them.
   */
  #forgetCollected(): void {
    const ids = this.lazy?.takeGone() ?? [];
    if (ids.length === 0) return;
    for (const id of ids) {
      const live = this.#live.get(id);
      if (!live) continue;
      this.#live.delete(id);
      this.#liveBytes -= live.region.descriptor.length;
    }
    this.#post({ type: 'regions-gone', ids });
  }

  /**
   * Collects once the process has been quiet for a while, and again (backing off) while regions
   * stay alive: buffers still queued on a socket survive one collection, and without new traffic
   * nothing else would ever give their references back.
   */
  #armIdleGc(): void {
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      this.#forgetCollected();
      if (this.#live.size === 0) return;
      // Without a GC function the regions V8 collects by itself are still told to the agent.
      if (this.#collections.available) {
        this.#lastGc = Date.now();
        this.#collections.collect();
      }
      this.#idleGcDelay = Math.min(this.#idleGcDelay * 2, maxIdleGcMs);
      this.#armIdleGc();
    }, this.#idleGcDelay);
    this.#idleTimer.unref();
  }

  /**
   * Regions held past half the TTL are fetched whole: a later read must not need the owner. The
   * collection's finalizers run after it, in immediates: the regions are looked at a little later.
   */
  #fetchLongHeld(): void {
    this.#forgetCollected();
    if (this.#live.size === 0) return; // nothing held: no collection needed either
    this.#collections.collect();
    setTimeout(() => {
      this.#forgetCollected();
      const old = Date.now() - this.config.store.ttlMs / 2;
      for (const live of this.#live.values()) {
        if (live.createdAt > old || live.region.remoteReleased) continue;
        void this.materialize({
          region: live.region,
          offset: 0,
          length: live.region.descriptor.length,
        }).catch(() => {});
      }
    }, finalizersSettleMs).unref();
  }

  /** Starts the agent worker and waits until its store listens. */
  static async start(config: StreamConfig, log: Logger = silentLogger): Promise<StreamRuntime> {
    const setting = config.keyFileSetting ?? 'ODB_KEY_FILE';
    const keyText = readKeyFile(config.keyFile, { setting });
    const keyring = parseKeyFile(keyText, `${setting} ${config.keyFile}`);
    const settings: AgentSettings = {
      keyText,
      storeHost: config.store.listen.host,
      storePort: config.store.listen.port,
      storeAdvertise: config.store.advertise,
      budgetBytes: config.store.budgetBytes,
      ttlMs: config.store.ttlMs,
      fetchTimeoutMs: config.fetch.timeoutMs,
      fetchRetries: config.fetch.retries,
      native: config.native,
    };
    const worker = startAgent(settings);
    const ready = await new Promise<Extract<AgentEvent, { type: 'ready' }>>((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', function onReady(event: AgentEvent) {
        if (event.type !== 'ready') return;
        worker.off('message', onReady);
        worker.off('error', reject);
        resolve(event);
      });
    });
    return new StreamRuntime(config, keyring, worker, ready, log);
  }

  #post(message: AgentMessage): void {
    this.#worker.postMessage(message);
  }

  #onEvent(event: AgentEvent): void {
    switch (event.type) {
      case 'dropped':
        if (this.#own.delete(event.id)) {
          this.#ownBytes -= event.charge;
          if (this.ownMemory.freedByCollection) this.#collections.note(event.charge);
        }
        return;
      case 'materialized': {
        const pending = this.#pending.get(event.requestId);
        this.#pending.delete(event.requestId);
        if (event.error) pending?.reject(new OdbError('ODB_ERR_FETCH_ABORTED', event.error));
        else pending?.resolve();
        return;
      }
      case 'store-activity': {
        const { type: _type, requestId, ...activity } = event;
        this.#activityRequests.get(requestId)?.(activity);
        this.#activityRequests.delete(requestId);
        return;
      }
      case 'fetch-failed':
        this.stats.fetchFailures++;
        this.log.error(
          { code: event.code, region: event.regionId },
          `lazy buffer fetch failed: ${event.message}`,
        );
        return;
      case 'log':
        this.log[event.level](event.message);
        return;
      case 'ready':
        return;
    }
  }

  // ---- payloads this process sends ---------------------------------------------------------

  /**
   * True when `length` more bytes would exceed the store's budget: the write then goes real, which
   * every tier after this one pays for (they copy it), so it is counted (`overBudget` in the
   * store's ping, paced by PacedReport) and logged once.
   */
  #spent(length: number): boolean {
    if (this.#ownBytes + length <= this.config.store.budgetBytes) return false;
    this.#overBudget.writes++;
    this.#overBudget.bytes += length;
    if (this.#overBudget.writes === 1) {
      this.log.warn(
        { budget: this.config.store.budgetBytes, held: this.#ownBytes },
        'the store budget (ODB_STORE_BUDGET) is spent: large writes go real until its payloads are released',
      );
    }
    this.#overBudgetReport.changed();
    return true;
  }

  /**
   * Copies `bytes` into own-payload memory held by this process's store and returns the
   * descriptor to send; undefined when the budget is spent (the caller sends them real).
   */
  registerOwn(bytes: Buffer): Descriptor | undefined {
    if (this.#spent(bytes.length)) return undefined;
    const memory = this.ownMemory.allocate(bytes.length);
    memory.write(0, bytes);
    return this.registerOwnMemory(memory, bytes.length);
  }

  /**
   * Hands the first `length` bytes of `memory` (which nobody may write any more) to this
   * process's store and returns their descriptor; undefined when the budget is spent (the caller
   * keeps the memory and sends the bytes real).
   */
  registerOwnMemory(memory: OwnPayloadMemory, length: number): Descriptor | undefined {
    if (this.#spent(length)) return undefined;
    const payloadId = randomFillSync(Buffer.allocUnsafe(payloadIdBytes));
    const descriptor = signDescriptor(
      {
        endpoint: this.endpoint,
        payloadId,
        offset: 0,
        length,
        totalSize: length,
        expiresAt: Date.now() + this.config.store.ttlMs,
        open: false,
      },
      this.keyring.signing,
    );
    this.#own.set(payloadIdHex(descriptor), memory);
    this.#ownBytes += length;
    this.#post({ type: 'register', descriptor: descriptor.bytes, payload: memory.handOff(length) });
    return descriptor;
  }

  // ---- payloads this process receives ------------------------------------------------------

  /**
   * A Buffer for a received descriptor: a view of our own bytes if we own it, a lazy buffer if
   * lazy buffers work here, else the bytes fetched now (the thread waits).
   */
  receive(descriptor: Descriptor): Buffer {
    this.stats.receivedVirtual++;
    this.stats.receivedVirtualBytes += descriptor.length;
    if (descriptor.endpoint === this.endpoint) {
      const own = this.#own
        .get(payloadIdHex(descriptor))
        ?.bytes(descriptor.offset, descriptor.length);
      if (own) {
        // Our own bytes came back: they are here now, the reference is not needed.
        this.#post({ type: 'release', descriptor: descriptorToText(descriptor) });
        return own;
      }
    }
    if (this.lazy) {
      this.lazy.syncExternalMemory();
      const text = descriptorToText(descriptor);
      const [buffer, id] = this.lazy.createRegion(
        descriptor.length,
        `owner ${descriptor.endpoint}, descriptor ${text}`,
      );
      const region: LazyRegion = { id, descriptor, remoteReleased: false };
      this.#regions.set(buffer.buffer, region);
      this.#live.set(id, { region, createdAt: Date.now() });
      this.#liveBytes += descriptor.length;
      this.#nudgeGc();
      this.#post({ type: 'region', id, descriptor: text });
      return buffer;
    }
    return this.#fetchNow(descriptor);
  }

  #fetchNow(descriptor: Descriptor): Buffer {
    const target = new SharedArrayBuffer(descriptor.length);
    const signal = new SharedArrayBuffer(4);
    this.#post({ type: 'fetch-sync', descriptor: descriptorToText(descriptor), target, signal });
    const flag = new Int32Array(signal);
    const deadline = this.config.fetch.timeoutMs * (this.config.fetch.retries + 1) + 1000;
    Atomics.wait(flag, 0, 0, deadline);
    if (Atomics.load(flag, 0) !== 1) {
      throw new OdbError(
        'ODB_ERR_FETCH_ABORTED',
        `could not fetch ${descriptor.length} bytes from ${descriptor.endpoint}`,
      );
    }
    this.stats.materialized++;
    return Buffer.from(target);
  }

  /** Payloads this process sent as descriptors that its store still holds. */
  get ownPayloadsHeld(): number {
    return this.#own.size;
  }

  /** How busy this process's store is (what a graceful exit waits for). */
  storeActivity(): Promise<StoreActivity> {
    const requestId = this.#nextRequest++;
    return new Promise((resolve) => {
      this.#activityRequests.set(requestId, resolve);
      this.#post({ type: 'store-activity', requestId });
    });
  }

  /** Hands the counters of learning peers to the agent, which reports them in the store's ping. */
  reportPeerCounters(counters: PeerCounters): void {
    this.#post({ type: 'peer-counters', counters: { ...counters } });
  }

  /** Sends the counters of lazy buffers written to plain sockets to the agent (its ping). */
  reportPlainWrites(counters: PlainWriteCounters): void {
    this.#post({ type: 'plain-writes', counters: structuredClone(counters) });
  }

  /** The lazy region behind `chunk`, if any. */
  lazyView(chunk: Uint8Array): LazyView | undefined {
    const region = this.#regions.get(chunk.buffer);
    return region ? { region, offset: chunk.byteOffset, length: chunk.byteLength } : undefined;
  }

  /**
   * True when the view's bytes provably equal the owner's (no page written since it was filled,
   * none failed) and the owner still holds them: the view can travel as a descriptor.
   */
  canForward(view: LazyView): boolean {
    if (view.region.remoteReleased) return false;
    const states = this.lazy?.pageStates(view.region.id, view.offset, view.length);
    return !!states && states.dirty === 0 && states.poisoned === 0;
  }

  /** True when no page of the view was written since it was filled, and none failed. */
  isUnchanged(view: LazyView): boolean {
    const states = this.lazy?.pageStates(view.region.id, view.offset, view.length);
    return !states || (states.dirty === 0 && states.poisoned === 0);
  }

  /** The descriptor of a view that {@link canForward}, taking a reference for the next holder. */
  forward(view: LazyView): Descriptor {
    const derived = deriveDescriptor(
      view.region.descriptor,
      this.keyring.signing,
      view.offset,
      view.length,
      Date.now() + this.config.store.ttlMs,
    );
    this.#post({ type: 'retain', descriptor: descriptorToText(derived) });
    this.stats.forwarded++;
    this.stats.forwardedBytes += view.length;
    return derived;
  }

  /** True when every byte of the view is already in memory. */
  isMaterialized(view: LazyView): boolean {
    const states = this.lazy?.pageStates(view.region.id, view.offset, view.length);
    return !states || (states.missing === 0 && states.inFlight === 0);
  }

  /**
   * Fetches every missing page of the view's region without blocking this thread; the owner's
   * reference is then given back (the region holds every byte). `viewOnly`: only the view's
   * pages (a view the application wrote into, whose neighbours may still travel by descriptor or
   * splice); the reference stays.
   */
  materialize(view: LazyView, viewOnly = false): Promise<void> {
    if (view.region.remoteReleased) return Promise.resolve();
    this.stats.materialized++;
    const requestId = this.#nextRequest++;
    const range = viewOnly ? ([view.offset, view.length] as const) : undefined;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(requestId, { resolve, reject });
      this.#post({ type: 'materialize', regionId: view.region.id, requestId, range });
    }).then(() => {
      if (viewOnly) return;
      view.region.remoteReleased = true;
      this.#collections.note(view.region.descriptor.length);
    });
  }
}
