// A buffer store served on a loopback port, for integration tests of the store protocol.
import { generateClusterKey, Keyring, type ClusterKey } from '../../src/core/keys/keyring.js';
import { signDescriptor, type Descriptor } from '../../src/protocol/descriptor.js';
import { StoreServer, type StoreServerOptions } from '../../src/store/server.js';
import { CountedStore } from '../../src/store/counted-store.js';
import type { BufferStoreOptions } from '../../src/store/store.js';

/** A running store with a fresh cluster key. */
export interface TestStore {
  readonly key: ClusterKey;
  readonly keyring: Keyring;
  /** Counted, so stream mode's adopt and references work too; registered entries behave as in a plain store. */
  readonly store: CountedStore;
  readonly server: StoreServer;
  /** `127.0.0.1:<port>`, as written into descriptors. */
  readonly endpoint: string;
  readonly port: number;
  /** Closes every connection, the server and the store. */
  close(): Promise<void>;
}

/** Starts a store (TTL 60 s unless `storeOptions` say otherwise) on a free loopback port. */
export async function startTestStore(
  options: Omit<StoreServerOptions, 'store'> = {},
  storeOptions: Omit<BufferStoreOptions, 'keyring'> = {},
): Promise<TestStore> {
  const key = generateClusterKey();
  const keyring = new Keyring([key]);
  const store = new CountedStore({ keyring, ttlMs: 60_000, ...storeOptions });
  const server = new StoreServer({ ...options, store });
  const endpoint = await server.listen('127.0.0.1', 0);
  return {
    key,
    keyring,
    store,
    server,
    endpoint,
    port: Number(endpoint.split(':')[1]),
    close: async () => {
      server.closeAllConnections();
      await server.close();
      store.close();
    },
  };
}

/** A descriptor of a whole `length`-byte payload at `endpoint`, signed with `key`. */
export function testDescriptor(
  key: ClusterKey,
  endpoint: string,
  length: number,
  { payloadId = Buffer.alloc(16), expiresAt = Date.now() + 60_000 } = {},
): Descriptor {
  return signDescriptor(
    { endpoint, payloadId, offset: 0, length, totalSize: length, expiresAt, open: false },
    key,
  );
}
