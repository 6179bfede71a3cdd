/**
 * The typed face of the native lazy-buffer addon (native/lazy.cc, built by node-gyp at install).
 * Loading never throws: when the addon is missing or userfaultfd is unusable, `loadLazyBinding`
 * says why, and stream mode falls back to materialising virtual data on arrival.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Page counts by state over a range of a region. */
export interface PageStates {
  readonly missing: number;
  readonly inFlight: number;
  readonly clean: number;
  readonly dirty: number;
  readonly poisoned: number;
}

/** What the kernel offered at initialisation. */
export interface LazyFeatures {
  /** Writes to filled pages are detected (UFFD write-protect), so clean pages can be forwarded. */
  readonly writeProtect: boolean;
  /** Failed pages can be poisoned (Linux ≥ 6.6); without it a failure stops the process. */
  readonly poison: boolean;
  readonly pageSize: number;
  /**
   * What V8 counts of a region as external memory: its filled bytes (Node 20), or its whole
   * length as for any Buffer (later Node versions, whose V8 aborts on the lower count this drifts to).
   */
  readonly externalMemory: 'filled' | 'whole';
}

/** What the addon holds of own-payload memory (see {@link OwnMemoryBinding.ownStats}). */
export interface OwnMemoryStats {
  /** Payloads allocated and not freed. */
  readonly live: number;
  /** Their capacity in bytes. */
  readonly liveBytes: number;
  /** Freed payloads (pages given back) whose mapping waits for their last view to be collected. */
  readonly retired: number;
  /** Mappings of freed payloads kept, pages and all, for the next payloads (at most 64 MiB). */
  readonly pooledBytes: number;
  /** Allocations served from that pool since the process started. */
  readonly poolHits: number;
}

/**
 * Memory for payloads this process sends (native/own-memory.cc): freed explicitly, not by
 * garbage collection. Needs only the addon, not userfaultfd. Ids are process-wide: any thread may
 * use an id another thread allocated.
 */
export interface OwnMemoryBinding {
  /** Reserves `capacity` bytes (pages are committed as they are written); returns the id. */
  ownAllocate(capacity: number): number;
  /** Copies `bytes` in at `offset`; throws once freed or outside the capacity. */
  ownWrite(id: number, offset: number, bytes: Uint8Array): void;
  /** A copy of `[offset, offset + length)`, or null once freed. */
  ownCopy(id: number, offset: number, length: number): Buffer | null;
  /** A Buffer over `[offset, offset + length)` (no copy), or null once freed. */
  ownView(id: number, offset: number, length: number): Buffer | null;
  /**
   * The caller is done with `view` (from {@link ownView} of `id`), kernel writes included: it is
   * detached (empty wherever it is referenced) and stops holding the payload's mapping.
   */
  ownUnview(id: number, view: Buffer): void;
  /**
   * Gives the memory back (idempotent). With no view left, the mapping may be pooled for the next
   * payload; views must not be read afterwards (those not released fault).
   */
  ownFree(id: number): void;
  /** Unmaps the pooled mappings. */
  ownTrim(): void;
  ownStats(): OwnMemoryStats;
}

/** The addon's functions (see native/lazy.cc and native/own-memory.cc). */
export interface LazyBinding extends OwnMemoryBinding {
  /** Once per process, in the thread that will serve faults. */
  init(onFault: (id: number, offset: number, length: number) => void): LazyFeatures;
  initialised(): boolean;
  /** A new region of `length` bytes: its Buffer and id. `label` names it in fatal messages. */
  createRegion(length: number, label: string): [Buffer, number];
  /** Fills `[offset, offset + bytes.length)` (offset page-aligned); false if the region is gone. */
  fill(id: number, offset: number, bytes: Buffer): boolean;
  /** Makes reads of the unfilled pages of the range fail (SIGBUS in JS, EFAULT in the kernel). */
  poison(id: number, offset: number, length: number): boolean;
  pageStates(id: number, offset: number, length: number): PageStates | null;
  /**
   * Marks every missing page (of the pages `[offset, offset + length)` touches, when given) in
   * flight and returns the chunks to fetch: [offset, length][].
   */
  requestMissing(id: number, offset?: number, length?: number): [number, number][];
  /**
   * The ids of regions whose Buffers were collected (by any collection, scavenges included) since
   * the last call; for the thread that creates them.
   */
  takeGone(): number[];
  /** Reports bytes filled since the last call to V8's external-memory accounting. */
  syncExternalMemory(): number;
  /**
   * V8's external-memory counter, in bytes: the figure its collector compares with its limits
   * (as rises above its lowest point since the last full collection). For tests.
   */
  externalMemoryCounter(): number;
}

/** Where the addon may be, in the order tried. */
export function bindingCandidates(): string[] {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  return [`${root}build/Release/odb_lazy.node`, `${root}build/Debug/odb_lazy.node`];
}

/**
 * The addon, or the reason it cannot be used (every path tried is listed). `enabled` false: the
 * user switched it off (ODB_NATIVE=off).
 */
export function loadLazyBinding(enabled = true): { binding: LazyBinding } | { reason: string } {
  if (!enabled) return { reason: 'the native addon is switched off (ODB_NATIVE=off)' };
  if (process.platform !== 'linux')
    return { reason: `lazy buffers need Linux userfaultfd (this is ${process.platform})` };
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of bindingCandidates()) {
    if (!existsSync(path)) {
      tried.push(`${path}: absent`);
      continue;
    }
    try {
      return { binding: require(path) as LazyBinding };
    } catch (err) {
      tried.push(`${path}: ${(err as Error).message}`);
    }
  }
  return {
    reason: `native addon not built (npm ci builds it with node-gyp); tried ${tried.join('; ')}`,
  };
}
