/**
 * The configurations a suite runs in: plainly, and under stream mode through NODE_OPTIONS, so
 * that every Node process of the suite (the runner, its per-file children, servers a test
 * spawns) has the layer, as `node --import odb/register` would give one program.
 *
 * Explicit port lists (configuration c) need the ports before the run: only a suite that
 * listens on fixed ports has them (SuiteSpec.fixedPorts); a suite that listens on port 0 skips c.
 */
import { writeNewKeyFile } from '../../src/core/keys/key-file-writer.js';
import { runSandboxed } from './sandbox.js';

export const configurationNames = ['plain', 'a', 'b', 'c'] as const;
export type ConfigurationName = (typeof configurationNames)[number];

/** One way of running a suite. */
export interface Configuration {
  readonly name: ConfigurationName;
  readonly description: string;
  /** The stream-mode variables; undefined: plain. */
  readonly odb?: Readonly<Record<string, string>>;
  /** ODB_LISTEN and ODB_CONNECT are the suite's fixed ports. */
  readonly portLists?: boolean;
}

export const configurations: Readonly<Record<ConfigurationName, Configuration>> = {
  plain: { name: 'plain', description: 'without the layer' },
  a: {
    name: 'a',
    description: 'ODB_LISTEN=* ODB_CONNECT=* ODB_THRESHOLD=64KiB',
    odb: { ODB_LISTEN: '*', ODB_CONNECT: '*', ODB_THRESHOLD: '64KiB' },
  },
  b: {
    name: 'b',
    description: 'ODB_LISTEN=* ODB_CONNECT=* ODB_THRESHOLD=1KiB',
    odb: { ODB_LISTEN: '*', ODB_CONNECT: '*', ODB_THRESHOLD: '1KiB' },
  },
  c: {
    name: 'c',
    description: "ODB_LISTEN and ODB_CONNECT the suite's fixed ports, ODB_THRESHOLD=1KiB",
    odb: { ODB_THRESHOLD: '1KiB' },
    portLists: true,
  },
};

/** Whether `configuration` can run `suite` (c needs fixed ports). */
export function applies(configuration: Configuration, suite: { fixedPorts?: readonly number[] }) {
  return !configuration.portLists || (suite.fixedPorts?.length ?? 0) > 0;
}

/** What the layer needs from the run: the register module, a cluster key, the reporter. */
export interface LayerFiles {
  readonly register: string;
  readonly keyFile: string;
  /** engagement-reporter.js: each process's counters at exit. */
  readonly reporter: string;
}

/** Writes a fresh cluster key (0600, as `odb keygen --out` does). */
export function newClusterKey(path: string): void {
  writeNewKeyFile(path, { replace: true });
}

function quoted(path: string): string {
  // NODE_OPTIONS splits on spaces unless a value is in double quotes.
  return /[\s"\\]/.test(path) ? JSON.stringify(path) : path;
}

/**
 * The environment of one run: the host's, without any ODB_* or NODE_OPTIONS of its own (they
 * would leak into the plain run), plus the suite's variables and, under the layer, ODB's.
 */
export function environmentFor(
  configuration: Configuration,
  suite: {
    env?: Readonly<Record<string, string>>;
    nodeOptions?: readonly string[];
    fixedPorts?: readonly number[];
  },
  layer: LayerFiles,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('ODB_') && key !== 'NODE_OPTIONS') env[key] = value;
  }
  Object.assign(env, suite.env);
  const nodeOptions = [...(suite.nodeOptions ?? [])];
  if (configuration.odb) {
    Object.assign(env, configuration.odb, { ODB_KEY_FILE: layer.keyFile });
    if (configuration.portLists) {
      const ports = suite.fixedPorts ?? [];
      env.ODB_LISTEN = ports.join(',');
      env.ODB_CONNECT = ports.map((port) => `:${port}`).join(',');
    }
    nodeOptions.push(`--import=${quoted(layer.register)}`, `--import=${quoted(layer.reporter)}`);
  }
  if (nodeOptions.length > 0) env.NODE_OPTIONS = nodeOptions.join(' ');
  return env;
}

/**
 * Checks, in the same environment and sandbox, that a Node process has the layer installed: a
 * layer that did not load (wrong path, missing key) would make every suite look transparent.
 */
export async function checkLayerLoads(
  env: NodeJS.ProcessEnv,
  cwd: string,
  scratch: string,
  isolate: boolean,
): Promise<void> {
  // register.ts keeps its installation under a versioned global symbol, odb.register.N (importing
  // it here to name the symbol would install the layer into this runner).
  const probe = `process.exit(Object.getOwnPropertySymbols(globalThis).some((s) =>
    s.description.startsWith('odb.register.') && typeof globalThis[s] === 'object') ? 0 : 3)`;
  const ending = await runSandboxed({
    argv: ['node', '-e', probe],
    cwd,
    env,
    stdoutPath: `${scratch}.out`,
    stderrPath: `${scratch}.err`,
    timeoutMs: 30_000,
    isolate,
  });
  if (ending.code !== 0) {
    throw new Error(
      `the layer is not installed in a child process (status ${ending.code}); see ${scratch}.err`,
    );
  }
}
