/** Cluster keys: the key file's strict format and the keyring that signs and verifies with them. */
import { randomBytes, randomInt } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { OdbError } from '../errors.js';

/** One cluster key: a 16-bit id carried in descriptors and a 32-byte HMAC secret. */
export interface ClusterKey {
  readonly id: number;
  readonly secret: Buffer;
}

/**
 * The keys a process holds. The first key signs; every key verifies, so a cluster can rotate by
 * adding the new key everywhere first, then moving it to the front (see docs/security.md).
 */
export class Keyring {
  #keys: readonly ClusterKey[] = [];
  #byId: ReadonlyMap<number, ClusterKey> = new Map();

  constructor(keys: readonly ClusterKey[]) {
    this.#take(keys);
  }

  /** The key new descriptors are signed with. */
  get signing(): ClusterKey {
    return this.#keys[0]!;
  }

  /** Every key, the signing key first (the order of the key file). */
  get keys(): readonly ClusterKey[] {
    return this.#keys;
  }

  /** The key with this id, or undefined. */
  get(id: number): ClusterKey | undefined {
    return this.#byId.get(id);
  }

  /**
   * Takes the keys of `next` in one step (a key-file reload): everything holding this keyring
   * signs and verifies with the new keys from now on.
   */
  replace(next: Keyring): void {
    this.#take(next.keys);
  }

  #take(keys: readonly ClusterKey[]): void {
    if (keys.length === 0) throw keyFileError('a keyring needs at least one key');
    const byId = new Map<number, ClusterKey>();
    for (const key of keys) {
      validateKey(key);
      if (byId.has(key.id)) throw keyFileError(`duplicate key id ${key.id}`);
      byId.set(key.id, key);
    }
    this.#keys = [...keys];
    this.#byId = byId;
  }
}

const secretBytes = 32;
const keyFileVersion = 1;
const maxKeyId = 0xffff;

function keyFileError(detail: string, cause?: unknown): OdbError {
  return new OdbError('ODB_ERR_KEY_FILE', detail, cause === undefined ? undefined : { cause });
}

function validateKey(key: ClusterKey): void {
  if (!Number.isInteger(key.id) || key.id < 0 || key.id > maxKeyId) {
    throw keyFileError(`key id must be an integer in 0..${maxKeyId}, got ${key.id}`);
  }
  if (key.secret.length !== secretBytes) {
    throw keyFileError(`key ${key.id}: secret must be ${secretBytes} bytes`);
  }
  // A secret of one repeated byte (all zeros, typically: a placeholder, a failed generator) is
  // no secret at all: anyone could sign descriptors with it.
  if (key.secret.every((byte) => byte === key.secret[0])) {
    throw keyFileError(`key ${key.id}: secret is one repeated byte, not a random secret`);
  }
}

/** A fresh random key (random id, so that keys of different clusters rarely share an id). */
export function generateClusterKey(): ClusterKey {
  return { id: randomInt(1, maxKeyId + 1), secret: randomBytes(secretBytes) };
}

/** The key-file text for these keys (JSON; the first key signs). */
export function formatKeyFile(keys: readonly ClusterKey[]): string {
  const body = {
    version: keyFileVersion,
    keys: keys.map((k) => ({ id: k.id, secret: k.secret.toString('base64') })),
  };
  return JSON.stringify(body, null, 2) + '\n';
}

/** What to do about a key file whose content is wrong. */
const contentFix = 'restore the file the other tiers use, or write one with: odb keygen --out FILE';

/**
 * The 32 bytes of a secret written as canonical base64: padded, no whitespace or stray
 * characters (Node's decoder silently skips those, so a damaged file would still "load").
 */
function decodeSecret(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === secretBytes && bytes.toString('base64') === text ? bytes : undefined;
}

/**
 * Parses key-file text. Strict: exactly `{ "version": 1, "keys": [{ "id", "secret" }, …] }`,
 * ids unique integers in 0..65535, secrets canonical base64 of 32 random bytes. Throws
 * ODB_ERR_KEY_FILE naming `source`, what is wrong and the fix.
 */
export function parseKeyFile(text: string, source = 'key file'): Keyring {
  const fail = (problem: string, cause?: unknown): OdbError =>
    keyFileError(`${source}: ${problem}; ${contentFix}`, cause);
  if (text.trim() === '') throw fail('the file is empty');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw fail(`not JSON (${(err as Error).message})`, err);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw fail('must hold a JSON object');
  }
  const { version, keys, ...extra } = parsed as Record<string, unknown>;
  const unknown = Object.keys(extra);
  if (unknown.length > 0) throw fail(`unknown field ${JSON.stringify(unknown[0])}`);
  if (version !== keyFileVersion) {
    throw fail(`version must be ${keyFileVersion}, got ${JSON.stringify(version)}`);
  }
  if (!Array.isArray(keys) || keys.length === 0) throw fail('keys must be a non-empty list');
  const seen = new Set<number>();
  const parsedKeys = keys.map((entry: unknown, i): ClusterKey => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw fail(`keys[${i}] must be an object with an id and a secret`);
    }
    const { id, secret, ...rest } = entry as Record<string, unknown>;
    const stray = Object.keys(rest);
    if (stray.length > 0) throw fail(`keys[${i}]: unknown field ${JSON.stringify(stray[0])}`);
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > maxKeyId) {
      throw fail(`keys[${i}]: id must be an integer in 0..${maxKeyId}`);
    }
    if (seen.has(id)) throw fail(`keys[${i}]: duplicate key id ${id}`);
    seen.add(id);
    const bytes = typeof secret === 'string' ? decodeSecret(secret) : undefined;
    if (!bytes) {
      throw fail(
        `keys[${i}] (id ${id}): secret must be the canonical base64 of ${secretBytes} bytes`,
      );
    }
    if (bytes.every((byte) => byte === bytes[0])) {
      throw fail(`keys[${i}] (id ${id}): secret is one repeated byte, not a random secret`);
    }
    return { id, secret: bytes };
  });
  return new Keyring(parsedKeys);
}

/** Options of {@link readKeyFile}. */
export interface ReadKeyFileOptions {
  /** The setting that named the file, for messages: `--key-file`, `ODB_KEY_FILE`, … */
  readonly setting?: string;
  /** Refuse a symbolic link instead of reading what it points to (for tools that rewrite it). */
  readonly noFollow?: boolean;
}

/**
 * Reads a key file's text. Refuses what is not a regular file, a file readable by group or
 * others (the key signs every descriptor of the cluster), and an empty file. Errors are one
 * ODB_ERR_KEY_FILE line naming the setting, the path, the problem and the fix.
 */
export function readKeyFile(path: string, options: ReadKeyFileOptions = {}): string {
  const source = `${options.setting ?? 'key file'} ${path}`;
  const flags =
    constants.O_RDONLY | constants.O_NONBLOCK | (options.noFollow ? constants.O_NOFOLLOW : 0);
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (err) {
    throw keyFileError(`${source}: ${openProblem(err as NodeJS.ErrnoException, path)}`, err);
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) {
      throw keyFileError(
        `${source}: not a regular file; point ${options.setting ?? 'it'} at a file written by odb keygen`,
      );
    }
    if ((info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw keyFileError(
        `${source}: readable or writable by group or others (mode ${mode}); fix: chmod 600 ${path}`,
      );
    }
    const text = readFileSync(fd, 'utf8');
    if (text.trim() === '') throw keyFileError(`${source}: the file is empty; ${contentFix}`);
    return text;
  } finally {
    closeSync(fd);
  }
}

function openProblem(err: NodeJS.ErrnoException, path: string): string {
  switch (err.code) {
    case 'ENOENT':
      return `no such file; create one with: odb keygen --out ${path}`;
    case 'EACCES':
    case 'EPERM':
      return 'permission denied; give the file to the user odb runs as (chown), mode 0600';
    case 'ELOOP':
      return 'is a symbolic link; give the path of the file it points to';
    default:
      return `cannot open (${err.code ?? err.message})`;
  }
}

/** Reads, checks and parses a key file (see {@link readKeyFile} and {@link parseKeyFile}). */
export function loadKeyring(path: string, options: ReadKeyFileOptions = {}): Keyring {
  return parseKeyFile(readKeyFile(path, options), `${options.setting ?? 'key file'} ${path}`);
}
