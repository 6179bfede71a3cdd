/**
 * The ODB agent: a worker thread of each stream-mode process. It owns what must keep working while
 * the application's thread is blocked on a page fault:
 *   - this process's buffer store and its server (payloads the application sent as descriptors);
 *   - the lazy-buffer fault handler: fetches a chunk from the owner and fills the pages;
 *   - references to other owners' payloads: retained when forwarded, released when finalised,
 *     sent in order per owner on one reference channel each.
 * It talks to the application thread only through messages (see AgentMessage / AgentEvent).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OdbError, isOdbError } from '../../core/errors.js';
import { loadLazyBinding, type LazyBinding, type LazyFeatures } from '../../native/binding.js';
import { parseKeyFile } from '../../core/keys/keyring.js';
import {
  decodeDescriptor,
  deriveDescriptor,
  descriptorFromText,
  descriptorToText,
  payloadIdHex,
  type Descriptor,
} from '../../protocol/descriptor.js';
import { BufferFetcher } from './fetcher.js';
import { ReferenceChannels } from '../../store/reference-channel.js';
import { referenceToken } from '../../store/references.js';
import { StoreServer } from '../../store/server.js';
import { CountedStore } from '../../store/counted-store.js';
import type {
  AgentEvent,
  AgentMessage,
  AgentSettings,
  OverBudgetCounters,
  PeerCounters,
  PlainWriteCounters,
} from './protocol.js';
import { CollectionPacer, obtainGc } from '../memory/collector.js';
import { freedByCollection, ownPayloadSource } from '../memory/own-payload.js';

const settings = workerData as AgentSettings;
const keyring = parseKeyFile(settings.keyText);
const port = parentPort!;
const post = (event: AgentEvent): void => port.postMessage(event);

const loaded = loadLazyBinding(settings.native);
/** The addon, for own payloads' native memory (which needs no userfaultfd). */
const ownMemory = 'binding' in loaded ? loaded.binding : undefined;
/** Without the addon, dropped payloads' shared memory goes only once this isolate collects it. */
const droppedPayloads = new CollectionPacer(obtainGc());
const store = new CountedStore({
  keyring,
  budgetBytes: settings.budgetBytes,
  ttlMs: settings.ttlMs,
  onDrop: (entry) => {
    post({ type: 'dropped', id: entry.id, charge: entry.charge });
    if (freedByCollection(entry.source)) droppedPayloads.note(entry.charge);
  },
});
/** What the agent did for the lazy buffers of this process (in the store's ping answer). */
const counters = { faults: 0, faultBytes: 0, fetchFailures: 0 };
/** What the application thread reported of learning peers (ODB_CONNECT=*). */
let peerCounters: Partial<PeerCounters> = {};
/** What the application thread reported of writes sent real past the store's budget. */
let overBudget: OverBudgetCounters | undefined;
/** What the application thread reported of lazy buffers it wrote to plain sockets. */
let plainWrites: PlainWriteCounters | undefined;
const server = new StoreServer({
  store,
  registrationWaitMs: 2000,
  pingExtras: () => ({
    ...peerCounters,
    ...counters,
    lazyRegions: regions.size,
    plainWrites,
    overBudget,
    ownPayloadBytes: ownMemory?.ownStats().liveBytes,
  }),
});
// An advertised port 0 stands for the port the store was given (see inherited-store.ts).
const advertise = settings.storeAdvertise;
const bound = await server.listen(
  settings.storeHost,
  settings.storePort,
  advertise?.endsWith(':0') ? undefined : advertise,
);
if (advertise?.endsWith(':0')) {
  store.advertise(`${advertise.slice(0, -2)}:${bound.slice(bound.lastIndexOf(':') + 1)}`);
}
const endpoint = store.endpoint!;
const fetcher = new BufferFetcher({
  fetchTimeoutMs: settings.fetchTimeoutMs,
  connectionsPerStore: 16,
});

/** A lazy region the application thread created: what to fetch for it. */
interface RegionInfo {
  readonly descriptor: Descriptor;
  readonly createdAt: number;
  /** The remote reference was given back early (the region holds every byte). */
  remoteReleased: boolean;
}
const regions = new Map<number, RegionInfo>();
const pendingFaults = new Map<number, [number, number][]>();

// ---- references to payloads of other owners: ordered per owner, one channel each -------------

const channels = new ReferenceChannels({
  connectTimeoutMs: settings.fetchTimeoutMs,
  signingKey: keyring.signing,
  // The owner is gone or refuses: its entries expire by themselves; nothing to retry.
  onProblem: (owner, message) =>
    post({ type: 'log', level: 'warn', message: `references to ${owner}: ${message}` }),
});

/** `text`: the descriptor's text form when the caller has it (it is what travels on). */
function reference(
  verb: 'retain' | 'release',
  descriptor: Descriptor,
  text = descriptorToText(descriptor),
): void {
  if (descriptor.endpoint === endpoint) {
    const id = payloadIdHex(descriptor);
    const token = referenceToken(descriptor.bytes);
    if (verb === 'retain') store.retainReference(id, token);
    else store.releaseReference(id, token);
    return;
  }
  channels.send(descriptor.endpoint, `${verb} ${text}`);
}

// ---- page faults and materialisation ---------------------------------------------------------

let lazy: LazyBinding | undefined;
let features: LazyFeatures | undefined;
let lazyReason: string | undefined;

/**
 * A range of `descriptor` with a fresh expiry, to fetch with: the descriptor on the wire may be
 * old, and the reference this process holds keeps the payload alive.
 */
function freshRange(descriptor: Descriptor, offset: number, length: number): Descriptor {
  const expiresAt = Date.now() + settings.fetchTimeoutMs * 4;
  return deriveDescriptor(descriptor, keyring.signing, offset, length, expiresAt);
}

/**
 * Fetches `[offset, offset + length)` of the region's payload and fills those pages. The bytes of
 * a payload of this process fill straight from its memory, while the store knows it is read.
 */
async function fetchAndFill(
  id: number,
  info: RegionInfo,
  offset: number,
  length: number,
): Promise<void> {
  const range = freshRange(info.descriptor, offset, length);
  if (range.endpoint !== endpoint) {
    lazy!.fill(id, offset, await fetcher.fetchBuffer(range));
    return;
  }
  const entry = store.beginRead(payloadIdHex(range));
  try {
    const parts: Buffer[] = [];
    for await (const chunk of entry.source.read(range.offset, range.offset + range.length))
      parts.push(chunk);
    // One chunk is already the range (a view of the payload), and `fill` copies it anyway.
    lazy!.fill(id, offset, parts.length === 1 ? parts[0]! : Buffer.concat(parts, range.length));
  } finally {
    store.endRead(entry);
  }
}

/** A first touch of missing pages (a userfaultfd fault, read-ahead included): fetch and fill. */
function onFault(id: number, offset: number, length: number): void {
  counters.faults++;
  counters.faultBytes += length;
  void fill(id, offset, length);
}

async function fill(id: number, offset: number, length: number): Promise<void> {
  const info = regions.get(id);
  if (!info) {
    // The fault overtook the region's announcement: serve it when that arrives.
    pendingFaults.set(id, [...(pendingFaults.get(id) ?? []), [offset, length]]);
    return;
  }
  let lastError: unknown;
  for (let attempt = 0; attempt <= settings.fetchRetries; attempt++) {
    try {
      await fetchAndFill(id, info, offset, length);
      return;
    } catch (err) {
      lastError = err;
      if (isOdbError(err, 'ODB_ERR_NOT_FOUND') || isOdbError(err, 'ODB_ERR_BAD_MAC')) break; // final
    }
  }
  const code = isOdbError(lastError) ? lastError.code : 'ODB_ERR_FETCH_ABORTED';
  counters.fetchFailures++;
  post({
    type: 'fetch-failed',
    regionId: id,
    code,
    message: String((lastError as Error)?.message ?? lastError),
  });
  lazy!.poison(id, offset, length);
}

/** Fills the missing pages of region `id` (of `range` only, when given); true if none is left. */
async function materialize(id: number, range?: readonly [number, number]): Promise<boolean> {
  const chunks = lazy!.requestMissing(id, ...(range ?? []));
  await Promise.all(chunks.map(([offset, length]) => fill(id, offset, length)));
  const [offset, length] = range ?? [0, Number.MAX_SAFE_INTEGER];
  const states = lazy!.pageStates(id, offset, length);
  if (states && states.poisoned > 0)
    throw new OdbError('ODB_ERR_FETCH_ABORTED', `region ${id} could not be fetched`);
  if (!range) return true;
  const whole = lazy!.pageStates(id, 0, Number.MAX_SAFE_INTEGER);
  return !!whole && whole.missing === 0 && whole.inFlight === 0;
}

if ('binding' in loaded) {
  try {
    features = loaded.binding.init(onFault);
    lazy = loaded.binding;
  } catch (err) {
    lazyReason = `userfaultfd unavailable: ${(err as Error).message}`;
  }
} else {
  lazyReason = loaded.reason;
}

// ---- messages from the application thread ---------------------------------------------------

async function handle(message: AgentMessage): Promise<void> {
  switch (message.type) {
    case 'register': {
      const descriptor = decodeDescriptor(Buffer.from(message.descriptor));
      const payload = ownPayloadSource(message.payload, ownMemory);
      if (!store.adopt(descriptor, payload, descriptor.length)) {
        payload.abandon?.();
        post({ type: 'dropped', id: payloadIdHex(descriptor), charge: descriptor.length });
      }
      return;
    }
    case 'region': {
      regions.set(message.id, {
        descriptor: descriptorFromText(message.descriptor),
        createdAt: Date.now(),
        remoteReleased: false,
      });
      const waiting = pendingFaults.get(message.id);
      if (waiting) {
        pendingFaults.delete(message.id);
        for (const [offset, length] of waiting) void fill(message.id, offset, length);
      }
      return;
    }
    case 'regions-gone':
      for (const id of message.ids) {
        const info = regions.get(id);
        regions.delete(id);
        if (info && !info.remoteReleased) reference('release', info.descriptor);
      }
      return;
    case 'store-activity':
      post({
        type: 'store-activity',
        requestId: message.requestId,
        entries: store.stats.entries,
        fetching: server.stats.inFlight,
        fetches: server.stats.fetches,
      });
      return;
    case 'peer-counters':
      peerCounters = message.counters;
      return;
    case 'plain-writes':
      plainWrites = message.counters;
      return;
    case 'over-budget':
      overBudget = message.counters;
      return;
    case 'retain':
    case 'release':
      reference(message.type, descriptorFromText(message.descriptor), message.descriptor);
      return;
    case 'materialize':
      try {
        const complete = await materialize(message.regionId, message.range);
        // Every byte is here now: this holder no longer needs the owner.
        const info = regions.get(message.regionId);
        if (complete && info && !info.remoteReleased) {
          info.remoteReleased = true;
          reference('release', info.descriptor);
        }
        post({ type: 'materialized', requestId: message.requestId });
      } catch (err) {
        post({ type: 'materialized', requestId: message.requestId, error: (err as Error).message });
      }
      return;
    case 'fetch-sync': {
      // Stream mode without lazy buffers: the application thread waits (Atomics.wait) while this
      // thread fetches into the shared buffer.
      const signal = new Int32Array(message.signal);
      try {
        const descriptor = descriptorFromText(message.descriptor);
        const fresh = freshRange(descriptor, 0, descriptor.length);
        await fetcher.fetchBuffer(fresh, Buffer.from(message.target));
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
