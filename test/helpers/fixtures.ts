import { mkdtempSync, openSync, writeSync, closeSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNewKeyFile } from '../../src/core/keys/key-file-writer.js';
import { syntheticChunks } from '../../src/store/payloads/synthetic.js';

/** A temporary directory with a cluster key; remove it with `cleanup`. */
export interface Workspace {
  readonly dir: string;
  readonly keyFile: string;
  /** Writes `size` synthetic bytes (seed) to `name` under dir; returns its path. */
  file(name: string, size: number, seed?: number): string;
  cleanup(): void;
}

export function workspace(prefix = 'odb-test-'): Workspace {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const keyFile = join(dir, 'cluster.key');
  writeNewKeyFile(keyFile);
  return {
    dir,
    keyFile,
    file(name, size, seed = 9) {
      const path = join(dir, name);
      if (size === 0) {
        writeFileSync(path, '');
        return path;
      }
      const fd = openSync(path, 'w');
      for (const chunk of syntheticChunks(seed, 0, size)) writeSync(fd, chunk);
      closeSync(fd);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
