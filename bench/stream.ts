/**
 * The stream-mode scenario: the chain a user already runs — a plain Node `http` file server as
 * BE, a plain `http-proxy` script as IS and as client-facing FE — started as is (`vanilla`) and
 * with `node --import odb/register` (`stream`), at the same fixed rates. A second IS program
 * reads (hashes) every body, to count the lazy-buffer faults that reading costs.
 *
 * The programs are the end-to-end fixtures (test/fixtures/stream). They bind 127.0.0.1, so this
 * scenario runs on loopback whatever `--env` says; bytes are each process's own read/write
 * counters (/proc/<pid>/io: every byte it read or wrote with a syscall, sockets and files).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processIo } from '../dev/harness/node-program.js';
import { startStreamPrograms } from '../dev/harness/stream-chain.js';
import { StoreClient } from '../src/store/client.js';
import { defaultSyntheticSeed, syntheticBytes } from '../src/store/payloads/synthetic.js';
import type { MeasuredChain } from './measure.js';

/** Which program runs as the IS. */
export type StreamIsKind = 'proxy' | 'hash';

const isPrograms: Record<StreamIsKind, string> = { proxy: 'is-proxy.mjs', hash: 'is-hash.mjs' };

/**
 * A running stream chain. In stream mode its counters are the IS agent's: `isFaults` (first
 * touches of lazy buffers, each fetching a read-ahead chunk), `isFaultBytes`, `isFetchFailures`.
 */
export interface StreamChain extends MeasuredChain {
  stop(): Promise<void>;
}

/** Writes `/bytes/<size>` files with the load generator's default synthetic payload. */
export function writeStreamFiles(root: string, sizes: readonly number[]): string {
  const dir = join(root, 'stream-files');
  mkdirSync(join(dir, 'bytes'), { recursive: true });
  for (const size of sizes)
    writeFileSync(join(dir, 'bytes', String(size)), syntheticBytes(defaultSyntheticSeed, 0, size));
  return dir;
}

/** Starts BE ← IS ← FE, all with `--import odb/register` when `stream`. */
export async function startStreamChain(options: {
  readonly stream: boolean;
  readonly keyFile: string;
  readonly filesDir: string;
  readonly isKind: StreamIsKind;
}): Promise<StreamChain> {
  const chain = await startStreamPrograms({
    odb: options.stream,
    keyFile: options.keyFile,
    filesDir: options.filesDir,
    isProgram: isPrograms[options.isKind],
  });
  const processes = [chain.be, chain.is, chain.fe];
  /** Reads the IS agent's counters (its store's ping). */
  const store = new StoreClient();
  return {
    processes,
    url: chain.url,
    bytes: async (tier) => {
      const { read, written } = processIo(processes.find((p) => p.name === tier)!.child.pid!);
      return { rx: read, tx: written };
    },
    counters: async (): Promise<Record<string, number>> => {
      if (!options.stream) return {};
      const ping = await store.ping(chain.isStore);
      return {
        isFaults: ping.faults ?? 0,
        isFaultBytes: ping.faultBytes ?? 0,
        isFetchFailures: ping.fetchFailures ?? 0,
      };
    },
    stop: async () => {
      await Promise.all([store.close(), chain.stop()]);
    },
  };
}
