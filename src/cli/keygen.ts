/**
 * `odb keygen`: writes a fresh cluster key file (mode 0600), or edits one for a key rotation:
 * `--add` appends a verify-only key, `--promote ID` makes a key the signing one, `--retire ID`
 * removes one. Files are always replaced atomically, never written through a symbolic link.
 */
import type { Command } from 'commander';
import { OdbError } from '../core/errors.js';
import {
  addKeyToFile,
  promoteKeyInFile,
  retireKeyInFile,
  writeNewKeyFile as writeFreshKeyFile,
} from '../core/keys/key-file-writer.js';
import { addOptions, defineOptions, optionTypes, resolveOptions } from './options.js';

export const keygenOptions = defineOptions({
  out: {
    flag: '--out <file>',
    description: 'the key file to write (or, with --add/--promote/--retire, to edit)',
    schema: optionTypes.path,
    required: true,
  },
  force: {
    flag: '--force',
    description: 'replace an existing file with a new single-key file',
    schema: optionTypes.flag,
    default: 'false',
  },
  add: {
    flag: '--add',
    description: 'append a new key to the existing file: it verifies, but does not sign yet',
    schema: optionTypes.flag,
    default: 'false',
  },
  promote: {
    flag: '--promote <id>',
    description: 'make key <id> of the existing file the signing key',
    schema: optionTypes.keyId,
  },
  retire: {
    flag: '--retire <id>',
    description: 'remove key <id> (not the signing key) from the existing file',
    schema: optionTypes.keyId,
  },
});

export function registerKeygen(program: Command): void {
  const keygen = program
    .command('keygen')
    .description('write a new cluster key file, or add, promote or retire a key in one');
  addOptions(keygen, keygenOptions).action(() => {
    const o = resolveOptions(keygenOptions, keygen);
    const chosen = (
      [
        ['--force', o.force],
        ['--add', o.add],
        ['--promote', o.promote !== undefined],
        ['--retire', o.retire !== undefined],
      ] as const
    )
      .filter(([, given]) => given)
      .map(([flag]) => flag);
    if (chosen.length > 1) {
      throw new OdbError('ODB_ERR_INVALID_OPTION', `${chosen.join(' and ')}: give only one`);
    }
    if (o.add) {
      const id = addKeyToFile(o.out);
      console.log(
        `added key ${id} to ${o.out}: it verifies but does not sign; once every tier has it, ` +
          `run: odb keygen --promote ${id} --out ${o.out}`,
      );
    } else if (o.promote !== undefined) {
      promoteKeyInFile(o.out, o.promote);
      console.log(`key ${o.promote} now signs in ${o.out}`);
    } else if (o.retire !== undefined) {
      retireKeyInFile(o.out, o.retire);
      console.log(`removed key ${o.retire} from ${o.out}`);
    } else {
      const id = writeFreshKeyFile(o.out, { replace: o.force });
      console.log(`wrote key ${id} to ${o.out}`);
    }
  });
}
