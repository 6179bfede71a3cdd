/**
 * Brings a suite onto this machine: `npm pack` of the pinned version into the cache directory,
 * unpacked, its missing fixtures made, and its devDependencies installed. npm's `--before` pins
 * the whole dependency tree to what the registry held on one date, so a later run installs the
 * same versions without a lock file of ours per suite. A stamp makes a prepared suite a no-op.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import type { SuiteSpec } from './suites.js';

const run = promisify(execFile);

/** A suite ready to run. */
export interface PreparedSuite {
  readonly spec: SuiteSpec;
  /** The unpacked package: the runner's working directory. */
  readonly dir: string;
  /** The test files, relative to `dir`. */
  readonly files: readonly string[];
  /** devDependency → the version installed (what was tested). */
  readonly devDependencies: Readonly<Record<string, string>>;
}

interface Stamp {
  readonly version: string;
  readonly registryDate: string;
}

async function sh(command: readonly string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run(command[0]!, command.slice(1), {
      cwd,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`${command.join(' ')} (in ${cwd}) failed: ${stderr.trim() || String(err)}`);
  }
}

/** Fetches, unpacks and installs `spec` under `cacheDir` unless the same pin is already there. */
export async function prepareSuite(
  spec: SuiteSpec,
  cacheDir: string,
  registryDate: string,
  log: (line: string) => void,
): Promise<PreparedSuite> {
  const root = join(cacheDir, 'suites', spec.name);
  const dir = join(root, 'package');
  const stampPath = join(root, 'stamp.json');
  const wanted: Stamp = { version: spec.version, registryDate };
  if (!existsSync(stampPath) || readFileSync(stampPath, 'utf8') !== JSON.stringify(wanted)) {
    log(`${spec.name}: npm pack ${spec.pkg}@${spec.version} and install (before ${registryDate})`);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    const tarball = (
      await sh(['npm', 'pack', `${spec.pkg}@${spec.version}`, '--silent'], root)
    ).trim();
    await sh(['tar', 'xzf', tarball], root);
    for (const fixture of spec.fixtures ?? []) {
      if (existsSync(join(dir, fixture.path))) continue;
      mkdirSync(dirname(join(dir, fixture.path)), { recursive: true });
      await sh(fixture.command, dir);
    }
    // Install scripts are not needed by any suite's tests, and they would run code at install.
    await sh(
      [
        'npm',
        'install',
        '--include=dev',
        '--ignore-scripts',
        '--no-package-lock',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        `--before=${registryDate}`,
      ],
      dir,
    );
    writeFileSync(stampPath, JSON.stringify(wanted));
  }
  return {
    spec,
    dir,
    files: expandFiles(dir, spec.files),
    devDependencies: installedDevDependencies(dir),
  };
}

/** The versions npm actually installed for the package's devDependencies. */
function installedDevDependencies(dir: string): Record<string, string> {
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    devDependencies?: Record<string, string>;
  };
  const out: Record<string, string> = {};
  for (const name of Object.keys(manifest.devDependencies ?? {}).sort()) {
    const path = join(dir, 'node_modules', name, 'package.json');
    out[name] = existsSync(path)
      ? (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version
      : 'not installed';
  }
  return out;
}

/** Patterns like `test/stream.*.test.js` (a `*` within the last segment) → sorted files. */
export function expandFiles(dir: string, patterns: readonly string[]): string[] {
  const files: string[] = [];
  for (const pattern of patterns) {
    const folder = posix.dirname(pattern);
    const name = posix.basename(pattern);
    const matcher = new RegExp(
      `^${name.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`,
    );
    const found = readdirSync(join(dir, folder))
      .filter((entry) => matcher.test(entry))
      .sort()
      .map((entry) => posix.join(folder, entry));
    if (found.length === 0) throw new Error(`${pattern} matches no file in ${dir}`);
    files.push(...found);
  }
  return files;
}
