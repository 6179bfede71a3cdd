/**
 * The ODB agent: a worker thread of each stream-mode process. It owns what must keep working while
 * the application's thread is blocked on a page fault:
 *   - this process's buffer store and its server (payloads the application sent as descriptors);
 *   - the lazy-buffer fault handler: fetches a chunk from the owner and fills the pages;
 *   - references to other owners' payloads: retained when forwarded, released when finalised,
 *     sent in order per owner, batched.
 * It talks to the application thread only through messages (see AgentMessage / AgentEvent).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OdbError, isOdbError } from '../errors.js';
import { loadLazyBinding, type LazyBinding, type LazyFeatures } from '../lazy/binding.js';
import { parseKeyFile } from '../keys/keyring.js';
import {
  decodeDescriptor,
  deriveDescriptor,
  descriptorFromText,
  descriptorToText,
  payloadIdHex,
  signDescriptor,
  type Descriptor,
} from '../protocol/descriptor.js';
import { StoreClient } from '../rab/client.js';
import { MemoryPayload } from '../rab/memory-payload.js';
import { referenceToken } from '../rab/references.js';
import { StoreServer } from '../rab/server.js';
import { BufferStore } from '../rab/store.js';
import type { AgentEvent, AgentMessage, AgentSettings } from './agent-protocol.js';

const settings = workerData as AgentSettings;
const keyring = parseKeyFile(settings.keyText);
const port = parentPort!;
const post = (event: AgentEvent): void => port.postMessage(event);

const store = new BufferStore({
  keyring,
  budgetBytes: settings.budgetBytes,
  ttlMs: settings.ttlMs,
  onDrop: (entry) => post({ type: 'dropped', id: entry.id, charge: entry.charge }),
});
/** What the agent did for the lazy buffers of this process (in the store's ping answer). */
const counters = { faults: 0, faultBytes: 0, fetchFailures: 0 };
const server = new StoreServer({
  store,
  registrationWaitMs: 2000,
  pingExtras: () => ({ ...counters, lazyRegions: regions.size }),
});
const bound = await server.listen(settings.storeHost, settings.storePort, settings.storeAdvertise);
const endpoint = store.endpoint!;
const client = new StoreClient({
  fetchTimeoutMs: settings.fetchTimeoutMs,
  connectionsPerStore: 16,
});

/** A lazy region the application thread created: what to fetch for it. */
interface RegionInfo {
  readonly descriptor: Descriptor;
  readonly createdAt: number;
  /** The remote reference was given back early (the region holds every byte). */
  remoteReleased: boolean;
  /** Being fetched whole because it was held long. */
  fetchingWhole: boolean;
}
const regions = new Map<number, RegionInfo>();
const pendingFaults = new Map<number, [number, number][]>();

// ---- references to payloads of other owners: ordered per owner, batched -------------------

const queues = new Map<string, { lines: string[]; flushing: boolean }>();

function reference(verb: 'retain' | 'release', descriptor: Descriptor): void {
  if (descriptor.endpoint === endpoint) {
    const id = payloadIdHex(descriptor);
    const token = referenceToken(descriptor.bytes);
    if (verb === 'retain') store.retainReference(id, token);
    else store.releaseReference(id, token);
    return;
  }
  let queue = queues.get(descriptor.endpoint);
  if (!queue) queues.set(descriptor.endpoint, (queue = { lines: [], flushing: false }));
  queue.lines.push(`${verb} ${descriptorToText(descriptor)}`);
  if (!queue.flushing) void flush(descriptor.endpoint, queue);
}

async function flush(owner: string, queue: { lines: string[]; flushing: boolean }): Promise<void> {
  queue.flushing = true;
  // Let the current burst accumulate: one request carries every line queued meanwhile.
  await new Promise((r) => setImmediate(r));
  while (queue.lines.length > 0) {
    const lines = queue.lines.splice(0, 512);
    try {
      await client.batch(owner, lines);
    } catch {
      // The owner is gone or refuses: its entries expire by themselves; nothing to retry.
    }
  }
  queue.flushing = false;
}

// ---- page faults and materialisation ---------------------------------------------------------

let lazy: LazyBinding | undefined;
let features: LazyFeatures | undefined;
let lazyReason: string | undefined;

/** The longest run of consecutive slices one fetch covers. */
const maxRunBytes = 2 * 1024 * 1024;

/** Part of a region to fill, region-relative. */
interface Piece {
  readonly id: number;
  readonly offset: number;
  readonly length: number;
}

/**
 * Lazy regions by payload and start offset there. Consecutive writes of a sender share one
 * payload (coalescer.ts), so the regions this process received for them are neighbours here,
 * and one fetch can fill a run of them.
 */
const regionsByPayload = new Map<string, Map<number, number>>();
/** Per payload, where a sequential reader's next fault is expected and how far to read ahead. */
const sequential = new Map<string, { next: number; span: number }>();
/** Fills under way per region: materialisation waits for pages another fetch is bringing. */
const inFlight = new Map<number, Set<Promise<void>>>();

function payloadKey(d: Descriptor): string {
  return `${d.endpoint} ${payloadIdHex(d)}`;
}

/** Adds the regions that follow `pieces` in their payload, while wholly missing, up to `span`. */
function extendRun(first: RegionInfo, pieces: Piece[], span: number): void {
  const neighbours = regionsByPayload.get(payloadKey(first.descriptor));
  let last = pieces[pieces.length - 1]!;
  let info = regions.get(last.id)!;
  let bytes = pieces.reduce((n, p) => n + p.length, 0);
  while (neighbours && bytes < span && last.offset + last.length === info.descriptor.length) {
    const nextId = neighbours.get(info.descriptor.offset + info.descriptor.length);
    const next = nextId === undefined ? undefined : regions.get(nextId);
    if (!next || next.descriptor.length + bytes > span) return;
    const states = lazy!.pageStates(nextId!, 0, next.descriptor.length);
    if (!states || states.missing * features!.pageSize < next.descriptor.length) return;
    const claimed = lazy!.requestMissing(nextId!);
    // A fault may have claimed pages meanwhile: only a whole region continues the run.
    if (claimed.length !== 1 || claimed[0]![0] !== 0) {
      for (const [offset, length] of claimed)
        void fill(next.descriptor, [{ id: nextId!, offset, length }]);
      return;
    }
    last = { id: nextId!, offset: 0, length: next.descriptor.length };
    pieces.push(last);
    bytes += last.length;
    info = next;
  }
}

/** The bytes of a run of pieces (consecutive in the payload `of` names), in one fetch. */
async function bytesFor(of: Descriptor, pieces: readonly Piece[]): Promise<Buffer> {
  const length = pieces.reduce((n, p) => n + p.length, 0);
  // Signed here, with a fresh expiry: the run may span several descriptors this process holds,
  // and the references it holds keep the payload alive.
  const range = signDescriptor(
    {
      endpoint: of.endpoint,
      payloadId: of.payloadId,
      offset: of.offset + pieces[0]!.offset,
      length,
      totalSize: of.totalSize,
      expiresAt: Date.now() + settings.fetchTimeoutMs * 4,
      open: false,
    },
    keyring.signing,
  );
  if (range.endpoint === endpoint) {
    const entry = store.beginRead(payloadIdHex(range));
    try {
      const parts: Buffer[] = [];
      for await (const chunk of entry.source.read(range.offset, range.offset + range.length))
        parts.push(chunk);
      // One chunk is already the range (a view of the shared bytes), and `fill` copies it anyway.
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts, range.length);
    } finally {
      store.endRead(entry);
    }
  }
  return client.fetchBuffer(range);
}

/** A first touch of missing pages (a userfaultfd fault, read-ahead included): fetch and fill. */
function onFault(id: number, offset: number, length: number): void {
  counters.faults++;
  serveFault(id, offset, length);
}

function serveFault(id: number, offset: number, length: number): void {
  const info = regions.get(id);
  if (!info) {
    // The fault overtook the region's announcement: serve it when that arrives.
    pendingFaults.set(id, [...(pendingFaults.get(id) ?? []), [offset, length]]);
    return;
  }
  // A reader going through consecutive regions in order reads ahead into the next ones, the
  // span doubling while it keeps on (as the addon does within a region).
  const key = payloadKey(info.descriptor);
  const at = info.descriptor.offset + offset;
  const seq = sequential.get(key);
  const span = seq && seq.next === at ? Math.min(maxRunBytes, seq.span * 2) : length;
  const pieces: Piece[] = [{ id, offset, length }];
  extendRun(info, pieces, span);
  const bytes = pieces.reduce((n, p) => n + p.length, 0);
  counters.faultBytes += bytes;
  sequential.set(key, { next: at + bytes, span });
  void fill(info.descriptor, pieces);
}

/**
 * Fetches a run of pieces (the first in the region of descriptor `of`) and fills them; on
 * failure their pages are poisoned, never left wrong. Regions collected meanwhile are skipped.
 */
function fill(of: Descriptor, pieces: Piece[]): Promise<void> {
  const done = fillOnce(of, pieces);
  for (const { id } of pieces) {
    let set = inFlight.get(id);
    if (!set) inFlight.set(id, (set = new Set()));
    set.add(done);
  }
  return done.finally(() => {
    for (const { id } of pieces) {
      const set = inFlight.get(id);
      set?.delete(done);
      if (set?.size === 0) inFlight.delete(id);
    }
  });
}

async function fillOnce(of: Descriptor, pieces: Piece[]): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt <= settings.fetchRetries; attempt++) {
    try {
      const bytes = await bytesFor(of, pieces);
      let at = 0;
      for (const p of pieces) {
        lazy!.fill(p.id, p.offset, bytes.subarray(at, at + p.length));
        at += p.length;
      }
      return;
    } catch (err) {
      lastError = err;
      if (isOdbError(err, 'ODB_ERR_NOT_FOUND') || isOdbError(err, 'ODB_ERR_BAD_MAC')) break; // final
    }
  }
  const code = isOdbError(lastError) ? lastError.code : 'ODB_ERR_FETCH_ABORTED';
  for (const p of pieces) {
    if (!regions.has(p.id)) continue;
    counters.fetchFailures++;
    post({
      type: 'fetch-failed',
      regionId: p.id,
      code,
      message: String((lastError as Error)?.message ?? lastError),
    });
    lazy!.poison(p.id, p.offset, p.length);
  }
}

/** Fetches every missing page of a region, and the wholly missing regions after it. */
async function materialize(id: number): Promise<void> {
  const info = regions.get(id);
  if (!info) throw new OdbError('ODB_ERR_FETCH_ABORTED', `region ${id} is not known`);
  const runs = lazy!.requestMissing(id).map(([offset, length]) => [{ id, offset, length }]);
  // Whoever writes this region to a plain socket will most likely write its successors next.
  if (runs.length > 0) extendRun(info, runs[runs.length - 1]!, maxRunBytes);
  const waits = [...(inFlight.get(id) ?? [])];
  await Promise.all([...runs.map((pieces) => fill(info.descriptor, pieces)), ...waits]);
  const states = lazy!.pageStates(id, 0, Number.MAX_SAFE_INTEGER);
  if (states && states.poisoned > 0)
    throw new OdbError('ODB_ERR_FETCH_ABORTED', `region ${id} could not be fetched`);
}

const loaded = loadLazyBinding();
if ('binding' in loaded) {
  try {
    features = loaded.binding.init(onFault, onGone);
    lazy = loaded.binding;
  } catch (err) {
    lazyReason = `userfaultfd unavailable: ${(err as Error).message}`;
  }
} else {
  lazyReason = loaded.reason;
}

/** Regions whose end was heard of before their announcement (the two travel different paths). */
const goneEarly = new Set<number>();

/** A region's Buffer was collected (told by the addon): give its reference back. */
function onGone(id: number): void {
  const info = regions.get(id);
  if (!info) {
    goneEarly.add(id);
    return;
  }
  regions.delete(id);
  forgetNeighbour(id, info.descriptor);
  if (!info.remoteReleased) reference('release', info.descriptor);
}

/**
 * Regions held past half the TTL are fetched whole, so a later read never needs the owner; the
 * application thread then marks them and gives their references back ('region-released').
 */
function fetchLongHeld(): void {
  const old = Date.now() - settings.ttlMs / 2;
  for (const [id, info] of regions) {
    if (info.createdAt > old || info.remoteReleased || info.fetchingWhole) continue;
    info.fetchingWhole = true;
    materialize(id).then(
      () => post({ type: 'materialized', regionId: id }),
      () => {}, // poisoned: a read fails visibly; the reference goes with the region
    );
  }
}
setInterval(fetchLongHeld, Math.max(1000, settings.ttlMs / 4)).unref();

function forgetNeighbour(id: number, descriptor: Descriptor): void {
  const key = payloadKey(descriptor);
  const neighbours = regionsByPayload.get(key);
  if (neighbours?.get(descriptor.offset) === id) neighbours.delete(descriptor.offset);
  if (neighbours?.size === 0) {
    regionsByPayload.delete(key);
    sequential.delete(key);
  }
}

// ---- messages from the application thread ---------------------------------------------------

async function handle(message: AgentMessage): Promise<void> {
  switch (message.type) {
    case 'register': {
      const descriptor = decodeDescriptor(Buffer.from(message.descriptor));
      const payload = new MemoryPayload({ expectedSize: descriptor.length });
      payload.append(Buffer.from(message.bytes));
      payload.finish();
      if (!store.adopt(descriptor, payload, descriptor.length)) {
        post({ type: 'dropped', id: payloadIdHex(descriptor), charge: descriptor.length });
      }
      return;
    }
    case 'region': {
      const descriptor = descriptorFromText(message.descriptor);
      if (goneEarly.delete(message.id)) {
        reference('release', descriptor);
        return;
      }
      regions.set(message.id, {
        descriptor,
        createdAt: Date.now(),
        remoteReleased: false,
        fetchingWhole: false,
      });
      const key = payloadKey(descriptor);
      let neighbours = regionsByPayload.get(key);
      if (!neighbours) regionsByPayload.set(key, (neighbours = new Map()));
      neighbours.set(descriptor.offset, message.id);
      const waiting = pendingFaults.get(message.id);
      if (waiting) {
        pendingFaults.delete(message.id);
        for (const [offset, length] of waiting) serveFault(message.id, offset, length);
      }
      return;
    }
    case 'region-released': {
      const info = regions.get(message.id);
      if (info && !info.remoteReleased) {
        info.remoteReleased = true;
        reference('release', info.descriptor);
      }
      return;
    }
    case 'retain':
    case 'release':
      reference(message.type, descriptorFromText(message.descriptor));
      return;
    case 'materialize':
      try {
        await materialize(message.regionId);
        // Every byte is here now; the application thread marks the region, then gives back its
        // reference (region-released), so no descriptor to it is forwarded after that.
        post({ type: 'materialized', regionId: message.regionId, requestId: message.requestId });
      } catch (err) {
        post({
          type: 'materialized',
          regionId: message.regionId,
          requestId: message.requestId,
          error: (err as Error).message,
        });
      }
      return;
    case 'fetch-sync': {
      // Stream mode without lazy buffers: the application thread waits (Atomics.wait) while this
      // thread fetches into the shared buffer.
      const signal = new Int32Array(message.signal);
      try {
        const descriptor = descriptorFromText(message.descriptor);
        const fresh = deriveDescriptor(
          descriptor,
          keyring.signing,
          0,
          descriptor.length,
          Date.now() + settings.fetchTimeoutMs * 4,
        );
        const bytes = await client.fetchBuffer(fresh);
        bytes.copy(Buffer.from(message.target));
        Atomics.store(signal, 0, 1);
        reference('release', descriptor);
      } catch {
        Atomics.store(signal, 0, -1);
      }
      Atomics.notify(signal, 0);
      return;
    }
  }
}

port.on('message', (message: AgentMessage) => {
  handle(message).catch((err: unknown) =>
    post({ type: 'log', level: 'warn', message: `agent: ${String(err)}` }),
  );
});

post({ type: 'ready', endpoint, bound, lazy: features ?? null, lazyReason });
