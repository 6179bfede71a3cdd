#!/usr/bin/env node
// Builds the lazy-buffer addon (native/lazy.cc) with node-gyp at install. A failed build never
// fails the install: stream mode then says so once at start-up and materialises data on arrival.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

if (process.platform !== 'linux') {
  console.log('odb: lazy buffers need Linux userfaultfd; skipping the native addon');
  process.exit(0);
}
const require = createRequire(import.meta.url);
let gyp;
try {
  // npm ships node-gyp; use the copy next to the npm running this install.
  gyp = require.resolve('node-gyp/bin/node-gyp.js', {
    paths: [join(dirname(process.execPath), '../lib/node_modules/npm/node_modules'), process.cwd()],
  });
} catch {
  gyp = undefined;
}
// Build against the headers installed with this Node (no download: machines may be offline) unless
// npm already says where they are.
const prefix = join(dirname(process.execPath), '..');
const args = ['rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
const command = gyp ? [process.execPath, [gyp, ...args]] : ['node-gyp', args];
const result = spawnSync(command[0], command[1], { stdio: 'inherit' });
if (result.status !== 0) {
  console.warn(
    'odb: WARNING the lazy-buffer addon did not build; stream mode will work without bypass (data materialised on arrival)',
  );
}
process.exit(0);
