// Real processes in stream mode: ordinary fixture programs, with ODB added only by `--import`.
import { freePort } from '../../dev/harness/free-port.js';
import { processIo, startNodeProgram, type NodeProgram } from '../../dev/harness/node-program.js';
import {
  startStreamPrograms,
  streamFixture,
  type StreamChainOptions,
  type StreamPrograms,
} from '../../dev/harness/stream-chain.js';
import type { StorePing } from '../../src/protocol/store-rpc.js';
import { StoreClient } from '../../src/store/client.js';
export { rssBytes } from '../../src/demo/proc-stat.js';

/** A fixture process. */
export type Peer = NodeProgram;

/**
 * Starts `fixture` (listening on a fresh port unless `env.PORT` is given). With `odb`, the
 * program runs under `node --import odb/register`, configured by the ODB_* variables in `env`.
 */
export async function startPeer(
  name: string,
  file: string,
  env: Record<string, string>,
  odb = true,
): Promise<Peer> {
  const port = env.PORT ?? String(await freePort());
  // The store's port is picked like PORT: freePort never hands out one number twice.
  const store = env.ODB_STORE_LISTEN ?? (odb ? `127.0.0.1:${await freePort()}` : undefined);
  const programEnv: Record<string, string> = { ...env, PORT: port };
  if (store !== undefined) programEnv.ODB_STORE_LISTEN = store;
  return startNodeProgram(name, streamFixture(file), { odb, env: programEnv });
}

/** The fixture processes of one test file: started through it, stopped together in `after`. */
export class PeerGroup {
  readonly peers: Peer[] = [];

  /** {@link startPeer}, remembered for {@link stopAll}. */
  async start(name: string, file: string, env: Record<string, string>, odb = true): Promise<Peer> {
    const p = await startPeer(name, file, env, odb);
    this.peers.push(p);
    return p;
  }

  /**
   * The test fixtures' chain (file server ← `isProgram`, default http-proxy ← http-proxy), every
   * tier under `--import odb/register` at log level info unless told; remembered for
   * {@link stopAll}.
   */
  async startChain(
    options: Omit<StreamChainOptions, 'odb' | 'isProgram'> & { readonly isProgram?: string },
  ): Promise<StreamPrograms> {
    const c = await startStreamPrograms({
      odb: true,
      isProgram: 'is-proxy.mjs',
      logLevel: 'info',
      ...options,
    });
    this.add(c.be, c.is, c.fe);
    return c;
  }

  /** Remembers processes started elsewhere (e.g. a whole chain). */
  add(...started: Peer[]): void {
    this.peers.push(...started);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.stop()));
  }
}

/** Bytes the process has read with read(2) so far, sockets included (/proc/<pid>/io rchar). */
export function bytesRead(pid: number): number {
  return processIo(pid).read;
}

/** A stream-mode process's store (`host:port`) answering its ping: payloads held, registered. */
export async function storePing(store: string): Promise<StorePing> {
  const client = new StoreClient();
  try {
    return await client.ping(store);
  } finally {
    await client.close();
  }
}

/** Stream-mode settings shared by every ODB process of a test. */
export function odbEnv(keyFile: string, extra: Record<string, string>): Record<string, string> {
  return { ODB_KEY_FILE: keyFile, ODB_LOG_LEVEL: 'info', ...extra };
}
