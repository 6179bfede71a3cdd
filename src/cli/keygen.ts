/** `odb keygen`: writes a fresh cluster key file (mode 0600). */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { OdbError } from '../errors.js';
import { formatKeyFile, generateClusterKey } from '../keys/keyring.js';
import { addOptions, defineOptions, optionTypes, resolveOptions } from './options.js';

export const keygenOptions = defineOptions({
  out: {
    flag: '--out <file>',
    description: 'where to write the key file',
    schema: optionTypes.path,
    required: true,
  },
  force: {
    flag: '--force',
    description: 'overwrite an existing file',
    schema: optionTypes.flag,
    default: 'false',
  },
});

/** Writes a new key file at `path`; refuses to overwrite unless `force`. Returns the key id. */
export function writeNewKeyFile(path: string, force = false): number {
  const key = generateClusterKey();
  try {
    writeFileSync(path, formatKeyFile([key]), { mode: 0o600, flag: force ? 'w' : 'wx' });
  } catch (err) {
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
    throw new OdbError(
      'ODB_ERR_KEY_FILE',
      exists ? `${path} exists (use --force)` : `cannot write ${path}`,
      {
        cause: err,
      },
    );
  }
  return key.id;
}

export function registerKeygen(program: Command): void {
  const keygen = program.command('keygen').description('write a new cluster key file');
  addOptions(keygen, keygenOptions).action(() => {
    const o = resolveOptions(keygenOptions, keygen);
    const id = writeNewKeyFile(o.out, o.force);
    console.log(`wrote key ${id} to ${o.out}`);
  });
}
