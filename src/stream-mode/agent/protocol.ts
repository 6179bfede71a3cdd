/** Messages between a stream-mode process's application thread and its agent worker. */
import type { LazyFeatures } from '../../native/binding.js';
import type { OwnPayloadHandle } from '../memory/own-payload.js';

/** What the agent is started with (workerData). */
export interface AgentSettings {
  readonly keyText: string;
  readonly storeHost: string;
  readonly storePort: number;
  readonly storeAdvertise: string | undefined;
  readonly budgetBytes: number;
  readonly ttlMs: number;
  readonly fetchTimeoutMs: number;
  readonly fetchRetries: number;
  /** Load the native addon (see StreamConfig.native). */
  readonly native: boolean;
}

/** Writes above the threshold that went real because the store's budget was spent, and bytes. */
export interface OverBudgetCounters {
  writes: number;
  bytes: number;
}

/** Application thread → agent. */
export type AgentMessage =
  /** A payload this process sent as a descriptor: keep its bytes for fetches, free on drop. */
  | {
      readonly type: 'register';
      readonly descriptor: Uint8Array;
      readonly payload: OwnPayloadHandle;
    }
  /** A lazy region was created for a descriptor (text form). */
  | { readonly type: 'region'; readonly id: number; readonly descriptor: string }
  /**
   * Lazy regions were garbage-collected (the addon's takeGone): give their references back. On
   * this port, so that it comes after any `retain` of a descriptor forwarded from them.
   */
  | { readonly type: 'regions-gone'; readonly ids: readonly number[] }
  /** A (derived) descriptor is being forwarded: take a reference for the next holder. */
  | { readonly type: 'retain'; readonly descriptor: string }
  /** This process is done with the reference a descriptor granted it (text form). */
  | { readonly type: 'release'; readonly descriptor: string }
  /** The application thread's counters of learning peers, for the store's ping answer. */
  | { readonly type: 'peer-counters'; readonly counters: PeerCounters }
  /** The application thread's counters of lazy buffers written to plain sockets. */
  | { readonly type: 'plain-writes'; readonly counters: PlainWriteCounters }
  /** Large writes this process sent real because its store's budget was spent. */
  | { readonly type: 'over-budget'; readonly counters: OverBudgetCounters }
  /** How busy the store is (for a graceful exit); answered with `store-activity`. */
  | { readonly type: 'store-activity'; readonly requestId: number }
  /** Fetch every missing page of a region (before a kernel write), answer `materialized`. */
  | {
      readonly type: 'materialize';
      readonly regionId: number;
      readonly requestId: number;
      /** Only the pages of this byte range; else the whole region. */
      readonly range?: readonly [offset: number, length: number];
    }
  /** Without lazy buffers: fetch into `target`, then set `signal[0]` to 1 (or -1) and notify. */
  | {
      readonly type: 'fetch-sync';
      readonly descriptor: string;
      readonly target: SharedArrayBuffer;
      readonly signal: SharedArrayBuffer;
    };

/** Agent → application thread. */
export type AgentEvent =
  | {
      readonly type: 'ready';
      readonly endpoint: string;
      readonly bound: string;
      readonly lazy: LazyFeatures | null;
      readonly lazyReason: string | undefined;
    }
  /** A payload left the store: its budget is free again (its memory was freed, or may go). */
  | { readonly type: 'dropped'; readonly id: string; readonly charge: number }
  | { readonly type: 'materialized'; readonly requestId: number; readonly error?: string }
  | ({ readonly type: 'store-activity'; readonly requestId: number } & StoreActivity)
  | {
      readonly type: 'fetch-failed';
      readonly regionId: number;
      readonly code: string;
      readonly message: string;
    }
  | { readonly type: 'log'; readonly level: 'warn' | 'info'; readonly message: string };

/** How busy a process's store is: what a graceful exit waits for (see shutdown.ts). */
export interface StoreActivity {
  /** Payloads held (some peer may still fetch them). */
  readonly entries: number;
  /** Fetches being answered now, and fetches begun since the store started. */
  readonly fetching: number;
  readonly fetches: number;
}

/** Why a lazy buffer written to a plain socket was fetched first instead of spliced. */
export type PlainWriteFallback =
  /** No transfer engine (no addon, ODB_NATIVE=off, a worker thread). */
  | 'unavailable'
  /** A TLS socket: its bytes are encrypted in user space. */
  | 'tls'
  /** No descriptor of its own (a pipe, a JavaScript stream) or closing. */
  | 'not-lendable'
  /** Written into since its pages were filled, or fetched whole already. */
  | 'changed'
  /** The owner's store refused or could not be reached before a byte was written. */
  | 'refused';

/** Lazy buffers written to plain sockets (the agent reports these in the store's ping). */
export interface PlainWriteCounters {
  /** Runs of lazy views the kernel spliced from the owner's store, and their bytes. */
  kernel: number;
  kernelBytes: number;
  /** Store requests those runs took (a request's body serves the socket's next runs too). */
  kernelRequests: number;
  /** Views fetched into memory first, by why. */
  fetched: Partial<Record<PlainWriteFallback, number>>;
}

/** What learning peers did (the agent reports these in the store's ping). */
export interface PeerCounters {
  /** Probe connections opened. */
  probes: number;
  /** Application connections that waited for a probe, and those whose wait ran out. */
  probeWaits: number;
  probeWaitsExpired: number;
  /** Plain connections to a peer learned to speak ODB, retired after their current response. */
  plainRetired: number;
  /** Hellos a learned peer did not answer: its verdict was forgotten. */
  helloRefused: number;
}
