#!/usr/bin/env node
// Runs the compiled tests (dist/test/**/*.test.js) one file at a time (node --test orders the
// files itself, by path).
//   node scripts/run-tests.mjs [--containing TEXT] [PATH...] [-- NODE_TEST_OPTION...]
// PATH: directories or files under dist/test (default: all of it). --containing keeps the files
// whose compiled source contains TEXT (`npm run fuzz` runs the property tests this way).
// Why a runner: `node --test dist/test` would take every .js under a directory named `test`
// (helpers and fixtures included) for a test file.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const split = args.indexOf('--');
const ours = split < 0 ? args : args.slice(0, split);
const passThrough = split < 0 ? [] : args.slice(split + 1);
let containing;
const paths = [];
for (let i = 0; i < ours.length; i++) {
  if (ours[i] === '--containing') containing = ours[++i];
  else paths.push(ours[i]);
}

function testFiles(path) {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true }).flatMap((entry) => {
    const child = join(path, entry.name);
    if (entry.isDirectory())
      return entry.name === 'helpers' || entry.name === 'fixtures' ? [] : testFiles(child);
    return entry.name.endsWith('.test.js') ? [child] : [];
  });
}

const files = (paths.length ? paths : ['dist/test'])
  .flatMap(testFiles)
  .filter((file) => containing === undefined || readFileSync(file, 'utf8').includes(containing))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files (build first: npm run build)');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', ...passThrough, ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
