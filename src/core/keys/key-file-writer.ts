/**
 * Writing key files safely: the bytes go to a fresh private file in the same directory, which
 * then takes the target's name in one step. So a key file is never half written, is always mode
 * 0600 whatever the file it replaces had, and a symbolic link at the target is replaced itself,
 * never written through (an attacker's link to another file cannot make us overwrite that file).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OdbError } from '../errors.js';
import { formatKeyFile, generateClusterKey, loadKeyring, type ClusterKey } from './keyring.js';

/** Options of {@link writeKeyFile}. */
export interface WriteKeyFileOptions {
  /** Replace a file (or link) already at `path`; otherwise an existing name is an error. */
  readonly replace?: boolean;
  /** The setting that named the file, for messages (default `--out`). */
  readonly setting?: string;
}

/** Writes `keys` (the first signs) as the key file at `path`, mode 0600, atomically. */
export function writeKeyFile(
  path: string,
  keys: readonly ClusterKey[],
  options: WriteKeyFileOptions = {},
): void {
  const setting = options.setting ?? '--out';
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(temp, 'wx', 0o600);
    try {
      // The umask may have taken bits away, never added any; make the mode exact anyway.
      fchmodSync(fd, 0o600);
      writeSync(fd, formatKeyFile(keys));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // rename() replaces whatever has the name, a link included; link() refuses any existing
    // name, a dangling link included: neither follows a link at `path`.
    if (options.replace) renameSync(temp, path);
    else linkSync(temp, path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const problem =
      e.code === 'EEXIST'
        ? 'exists (use --force to replace it, --add to add a key to it)'
        : `cannot write (${e.code ?? e.message})`;
    throw new OdbError('ODB_ERR_KEY_FILE', `${setting} ${path}: ${problem}`, { cause: err });
  } finally {
    rmSync(temp, { force: true });
  }
}

/** Writes a key file holding one new key; returns its id. */
export function writeNewKeyFile(path: string, options: WriteKeyFileOptions = {}): number {
  const key = generateClusterKey();
  writeKeyFile(path, [key], options);
  return key.id;
}

/** Keys of an existing key file, read for rewriting (a link at `path` is refused, not followed). */
function readForEdit(path: string, setting: string): ClusterKey[] {
  return [...loadKeyring(path, { setting, noFollow: true }).keys];
}

function noSuchKey(path: string, setting: string, id: number): OdbError {
  return new OdbError('ODB_ERR_KEY_FILE', `${setting} ${path}: holds no key with id ${id}`);
}

/**
 * Appends a new key to an existing key file; returns its id. The new key verifies but does not
 * sign until it is promoted (see docs/security.md, "Keys and rotation").
 */
export function addKeyToFile(path: string, setting = '--out'): number {
  const keys = readForEdit(path, setting);
  let key = generateClusterKey();
  while (keys.some((k) => k.id === key.id)) key = generateClusterKey();
  writeKeyFile(path, [...keys, key], { replace: true, setting });
  return key.id;
}

/** Makes key `id` the signing key (first) of a key file; the others keep verifying. */
export function promoteKeyInFile(path: string, id: number, setting = '--out'): void {
  const keys = readForEdit(path, setting);
  const key = keys.find((k) => k.id === id);
  if (!key) throw noSuchKey(path, setting, id);
  writeKeyFile(path, [key, ...keys.filter((k) => k !== key)], { replace: true, setting });
}

/** Removes key `id` from a key file; the signing key cannot be removed (promote another first). */
export function retireKeyInFile(path: string, id: number, setting = '--out'): void {
  const keys = readForEdit(path, setting);
  if (!keys.some((k) => k.id === id)) throw noSuchKey(path, setting, id);
  if (keys[0]!.id === id) {
    throw new OdbError(
      'ODB_ERR_KEY_FILE',
      `${setting} ${path}: key ${id} signs; promote another key first (--promote ID)`,
    );
  }
  writeKeyFile(
    path,
    keys.filter((k) => k.id !== id),
    { replace: true, setting },
  );
}
