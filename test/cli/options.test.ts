import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command, Option } from 'commander';
import { demoOptions } from '../../src/cli/demo.js';
import { keygenOptions } from '../../src/cli/keygen.js';
import { loadOptions } from '../../src/cli/load.js';
import { addOptions, resolveOptions, type OptionTable } from '../../src/cli/options.js';
import {
  backendOptions,
  frontendOptions,
  intermediateOptions,
} from '../../src/cli/tier-commands.js';
import { isOdbError } from '../../src/core/errors.js';

const tables: Record<string, OptionTable> = {
  be: backendOptions,
  is: intermediateOptions,
  fe: frontendOptions,
  keygen: keygenOptions,
  load: loadOptions,
  demo: demoOptions,
};

test('every option key is the attribute commander derives from its flag', () => {
  for (const [name, table] of Object.entries(tables)) {
    for (const [key, spec] of Object.entries(table)) {
      assert.equal(new Option(spec.flag).attributeName(), key, `${name} ${spec.flag}`);
    }
  }
});

test('every default is itself valid', () => {
  for (const [name, table] of Object.entries(tables)) {
    for (const [key, spec] of Object.entries(table)) {
      if (spec.default !== undefined)
        assert.ok(spec.schema.safeParse(spec.default).success, `${name}.${key}`);
    }
  }
});

function resolve(table: OptionTable, argv: string[]): Record<string, unknown> {
  const command = addOptions(new Command('t').exitOverride(), table);
  command.parse(argv, { from: 'user' });
  return resolveOptions(table, command);
}

function configFile(content: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'odb-opt-')), 'c.json');
  writeFileSync(path, JSON.stringify(content));
  return path;
}

test('flags override the config file, which overrides defaults', () => {
  const config = configFile({ threshold: '1MiB', storeTtl: 5000, root: '/srv' });
  const o = resolve(backendOptions, ['--config', config, '--threshold', '64KiB']);
  assert.equal(o.threshold, 65536);
  assert.equal(o.storeTtl, 5000);
  assert.equal(o.root, '/srv');
  assert.equal(o.storeBudget, 256 * 1024 * 1024);
  assert.deepEqual(o.listen, { host: '127.0.0.1', port: 8080 });
});

test('config files are strict: unknown keys and bad values name what is wrong', () => {
  const unknown = configFile({ threshhold: '1MiB' });
  assert.throws(
    () => resolve(backendOptions, ['--config', unknown]),
    (e: unknown) =>
      isOdbError(e, 'ODB_ERR_INVALID_OPTION') && /threshhold/.test((e as Error).message),
  );
  const badType = configFile({ listen: 'nowhere' });
  assert.throws(
    () => resolve(backendOptions, ['--config', badType]),
    (e: unknown) => isOdbError(e, 'ODB_ERR_INVALID_OPTION') && /listen/.test((e as Error).message),
  );
});

test('bad flags and missing required options are named', () => {
  assert.throws(() => resolve(backendOptions, ['--threshold', 'big']), /--threshold/);
  assert.throws(() => resolve(backendOptions, ['--mode', 'turbo']), /--mode/);
  assert.throws(() => resolve(intermediateOptions, []), /--upstream is required/);
  assert.throws(
    () => resolve(frontendOptions, ['--upstream', 'http://a:1', '--upstream', 'http://b:1']),
    /--upstream/,
  );
  const o = resolve(intermediateOptions, ['--upstream', 'http://a:1', '--upstream', 'http://b:2']);
  assert.deepEqual(o.upstream, ['http://a:1', 'http://b:2']);
});
