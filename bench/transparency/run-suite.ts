/**
 * Runs one prepared suite in one configuration and reads its results: the runner's TAP per
 * invocation (one per file for node --test, see SuiteSpec.perFile), within one deadline for the
 * whole suite. Raw TAP and stderr stay on disk next to the parsed results, for reading a failure
 * in full.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { environmentFor, type Configuration, type LayerFiles } from './layer.js';
import { countOdbMessages, type OdbMessages } from './odb-log.js';
import { runSandboxed } from './sandbox.js';
import { parseTap, type TestOutcome } from './tap.js';
import type { PreparedSuite } from './workspace.js';

/** How a suite's run ended as a whole. */
export type RunStatus = 'passed' | 'failed' | 'timeout';

/** One suite in one configuration. */
export interface SuiteRun {
  readonly suite: string;
  readonly configuration: string;
  /** The register module the layer came from (none for plain). */
  readonly layer?: string;
  readonly status: RunStatus;
  readonly seconds: number;
  /**
   * Runner invocations that did not exit 0 (file, or `all`): their status, null for a signal,
   * `timeout` when killed at the file's or the suite's limit.
   */
  readonly exits: Readonly<Record<string, number | null | 'timeout'>>;
  /** Files not run because the deadline had passed. */
  readonly notRun: readonly string[];
  readonly outcomes: readonly TestOutcome[];
  readonly odbMessages: OdbMessages;
  /** Under the layer: how many processes had it, and their counters summed (runtime.stats). */
  readonly engagement?: Engagement;
  /** Where the raw TAP and stderr are. */
  readonly logs: string;
}

/** The layer's counters of a run's processes, summed. */
export interface Engagement {
  readonly processes: number;
  readonly counters: Readonly<Record<string, number>>;
}

/** Sums the files engagement-reporter.ts wrote, one per process. */
function readEngagement(dir: string): Engagement {
  const counters: Record<string, number> = {};
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  for (const file of files) {
    const stats = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
    for (const [key, value] of Object.entries(stats)) {
      if (typeof value === 'number') counters[key] = (counters[key] ?? 0) + value;
    }
  }
  return { processes: files.length, counters };
}

export interface RunSettings {
  readonly layer: LayerFiles;
  readonly runsDir: string;
  /** For the whole suite. */
  readonly timeoutMs: number;
  /** For one file of a suite run file by file; a file killed at it does not stop the suite. */
  readonly fileTimeoutMs: number;
  readonly isolate: boolean;
}

/** Runs `prepared` under `configuration`. */
export async function runSuite(
  prepared: PreparedSuite,
  configuration: Configuration,
  settings: RunSettings,
): Promise<SuiteRun> {
  const { spec } = prepared;
  const logs = join(settings.runsDir, configuration.name, spec.name);
  rmSync(logs, { recursive: true, force: true });
  mkdirSync(logs, { recursive: true });
  const env = environmentFor(configuration, spec, settings.layer);
  const statsDir = join(logs, 'stats');
  if (configuration.odb) {
    mkdirSync(statsDir);
    env.TRANSPARENCY_STATS_DIR = statsDir;
  }
  const batches = spec.perFile ? prepared.files.map((f) => [f]) : [prepared.files];
  const deadline = Date.now() + settings.timeoutMs;
  const outcomes: TestOutcome[] = [];
  const exits: Record<string, number | null | 'timeout'> = {};
  const odbMessages: OdbMessages = {};
  const notRun: string[] = [];
  let timedOut = false;
  const started = Date.now();

  for (const [index, files] of batches.entries()) {
    const label = spec.perFile ? files[0]! : 'all';
    if (timedOut || Date.now() >= deadline) {
      timedOut = true;
      notRun.push(...files);
      continue;
    }
    const base = join(logs, String(index).padStart(3, '0'));
    const ending = await runSandboxed({
      argv: [...spec.runner, ...files],
      cwd: prepared.dir,
      env,
      stdoutPath: `${base}.tap`,
      stderrPath: `${base}.err`,
      timeoutMs: Math.min(
        deadline - Date.now(),
        spec.perFile ? settings.fileTimeoutMs : Number.POSITIVE_INFINITY,
      ),
      isolate: settings.isolate,
    });
    if (ending.timedOut && Date.now() >= deadline) timedOut = true;
    if (ending.timedOut) exits[label] = 'timeout';
    else if (ending.code !== 0) exits[label] = ending.code;
    const tap = readFileSync(`${base}.tap`, 'utf8');
    const prefix = spec.perFile ? `${label} > ` : '';
    for (const outcome of parseTap(tap, prepared.dir)) {
      // node --test names a file that failed on its own (a hang, a crash) by its path.
      const id = outcome.id === label ? `${label} (the file itself)` : prefix + outcome.id;
      outcomes.push({ ...outcome, id });
    }
    countOdbMessages(readFileSync(`${base}.err`, 'utf8'), odbMessages);
  }

  const failed = outcomes.some((o) => o.status === 'fail') || Object.keys(exits).length > 0;
  return {
    suite: spec.name,
    configuration: configuration.name,
    layer: configuration.odb ? settings.layer.register : undefined,
    status: timedOut ? 'timeout' : failed ? 'failed' : 'passed',
    seconds: (Date.now() - started) / 1000,
    exits,
    notRun,
    outcomes,
    odbMessages,
    engagement: configuration.odb ? readEngagement(statsDir) : undefined,
    logs,
  };
}
