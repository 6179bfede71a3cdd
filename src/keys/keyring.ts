import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { OdbError } from '../errors.js';

/** One cluster key: a 16-bit id carried in descriptors and a 32-byte HMAC secret. */
export interface ClusterKey {
  readonly id: number;
  readonly secret: Buffer;
}

/**
 * The keys a process holds. The first key signs; every key verifies, so a cluster can rotate by
 * adding the new key everywhere first, then moving it to the front.
 */
export class Keyring {
  readonly signing: ClusterKey;
  readonly #byId: ReadonlyMap<number, ClusterKey>;

  constructor(keys: readonly ClusterKey[]) {
    const [first] = keys;
    if (!first) throw new OdbError('ODB_ERR_KEY_FILE', 'a keyring needs at least one key');
    const byId = new Map<number, ClusterKey>();
    for (const key of keys) {
      validateKey(key);
      if (byId.has(key.id)) throw new OdbError('ODB_ERR_KEY_FILE', `duplicate key id ${key.id}`);
      byId.set(key.id, key);
    }
    this.signing = first;
    this.#byId = byId;
  }

  /** The key with this id, or undefined. */
  get(id: number): ClusterKey | undefined {
    return this.#byId.get(id);
  }
}

const secretBytes = 32;
const keyFileVersion = 1;

function validateKey(key: ClusterKey): void {
  if (!Number.isInteger(key.id) || key.id < 0 || key.id > 0xffff) {
    throw new OdbError('ODB_ERR_KEY_FILE', `key id must be an integer in 0..65535, got ${key.id}`);
  }
  if (key.secret.length !== secretBytes) {
    throw new OdbError('ODB_ERR_KEY_FILE', `key ${key.id}: secret must be ${secretBytes} bytes`);
  }
}

/** A fresh random key (random id, so that keys of different clusters rarely share an id). */
export function generateClusterKey(): ClusterKey {
  return { id: randomInt(1, 0x10000), secret: randomBytes(secretBytes) };
}

/** The key-file text for these keys (JSON; the first key signs). */
export function formatKeyFile(keys: readonly ClusterKey[]): string {
  const body = {
    version: keyFileVersion,
    keys: keys.map((k) => ({ id: k.id, secret: k.secret.toString('base64') })),
  };
  return JSON.stringify(body, null, 2) + '\n';
}

/** Parses key-file text; throws ODB_ERR_KEY_FILE naming what is wrong. */
export function parseKeyFile(text: string, source = 'key file'): Keyring {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new OdbError('ODB_ERR_KEY_FILE', `${source} is not JSON`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new OdbError('ODB_ERR_KEY_FILE', `${source} must hold a JSON object`);
  }
  const { version, keys } = parsed as { version?: unknown; keys?: unknown };
  if (version !== keyFileVersion) {
    throw new OdbError('ODB_ERR_KEY_FILE', `${source}: version must be ${keyFileVersion}`);
  }
  if (!Array.isArray(keys))
    throw new OdbError('ODB_ERR_KEY_FILE', `${source}: keys must be a list`);
  return new Keyring(
    keys.map((entry: unknown, i) => {
      const { id, secret } = (entry ?? {}) as { id?: unknown; secret?: unknown };
      if (typeof id !== 'number' || typeof secret !== 'string') {
        throw new OdbError(
          'ODB_ERR_KEY_FILE',
          `${source}: keys[${i}] needs a numeric id and a secret`,
        );
      }
      return { id, secret: Buffer.from(secret, 'base64') };
    }),
  );
}

/** Reads and parses a key file. */
export function loadKeyring(path: string): Keyring {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new OdbError('ODB_ERR_KEY_FILE', `cannot read ${path}`, { cause: err });
  }
  return parseKeyFile(text, path);
}
