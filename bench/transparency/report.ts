/**
 * The transparency report: per suite and configuration the counts, and what matters — the tests
 * that pass plainly but fail under the layer, or do not run at all under it (their file crashed
 * or hung). A test that fails plainly too (no network here, Node-version drift) says nothing
 * about the layer and is left out of both lists.
 */
import type { SuiteRun } from './run-suite.js';
import type { SuiteSpec } from './suites.js';
import type { TestOutcome } from './tap.js';

/** A test that passed plainly (or was not reported on its own) and failed under the layer. */
export interface Regression {
  readonly id: string;
  readonly detail: readonly string[];
}

/** One run, counted, and compared with the plain run of its suite. */
export interface RunSummary {
  readonly suite: string;
  readonly configuration: string;
  readonly layer?: string;
  readonly status: SuiteRun['status'];
  readonly seconds: number;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly exits: SuiteRun['exits'];
  readonly notRun: readonly string[];
  /** Under the layer only: compared with the plain run. */
  readonly failsUnderLayer?: readonly Regression[];
  readonly missingUnderLayer?: readonly string[];
  readonly odbMessages: SuiteRun['odbMessages'];
  readonly engagement?: SuiteRun['engagement'];
  readonly logs: string;
}

export interface TransparencyReport {
  readonly meta: {
    readonly command: string;
    readonly date: string;
    readonly node: string;
    readonly register: string;
    readonly registryDate: string;
    readonly network: string;
    readonly configurations: Readonly<Record<string, string>>;
  };
  readonly suites: readonly (SuiteSpec & {
    readonly testFiles: readonly string[];
    readonly devDependencies: Readonly<Record<string, string>>;
  })[];
  readonly runs: readonly RunSummary[];
}

function count(outcomes: readonly TestOutcome[], status: TestOutcome['status']): number {
  return outcomes.filter((o) => o.status === status).length;
}

/** Counts `run` and, given the plain run of the same suite, compares it. */
export function summarise(run: SuiteRun, plain: SuiteRun | undefined): RunSummary {
  const summary: RunSummary = {
    suite: run.suite,
    configuration: run.configuration,
    layer: run.layer,
    status: run.status,
    seconds: Math.round(run.seconds),
    passed: count(run.outcomes, 'pass'),
    failed: count(run.outcomes, 'fail'),
    skipped: count(run.outcomes, 'skip'),
    exits: run.exits,
    notRun: run.notRun,
    odbMessages: run.odbMessages,
    engagement: run.engagement,
    logs: run.logs,
  };
  if (!plain || run === plain) return summary;
  const byId = new Map(run.outcomes.map((o) => [o.id, o]));
  const plainly = new Map(plain.outcomes.map((o) => [o.id, o.status]));
  return {
    ...summary,
    // Absent plainly counts as passed: node --test reports a file (or a group) on its own only
    // when it fails, e.g. when a test left a handle open and the file timed out.
    failsUnderLayer: run.outcomes
      .filter((o) => o.status === 'fail' && (plainly.get(o.id) ?? 'pass') === 'pass')
      .map((o) => ({ id: o.id, detail: o.detail.slice(0, 40) })),
    missingUnderLayer: plain.outcomes
      .filter((o) => o.status === 'pass' && !byId.has(o.id))
      .map((o) => o.id),
  };
}

function runCell(run: RunSummary): string {
  if (run.status === 'timeout') return `timeout after ${run.seconds} s`;
  const killed = Object.values(run.exits).filter((e) => e === 'timeout').length;
  return `${run.status}, ${run.seconds} s${killed ? `, ${killed} file(s) killed at the limit` : ''}`;
}

/** Shows that the layer took part: a pass under a layer that sent nothing would say little. */
function engaged(run: RunSummary): string {
  if (!run.engagement) return '—';
  const { processes, counters } = run.engagement;
  const count = (key: string) => (counters[key] === undefined ? '?' : String(counters[key]));
  return `${processes}, ${count('sentReal')}, ${count('sentVirtual')} / ${count('receivedVirtual')}`;
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/`/g, "'");

/** The markdown report (printed on stdout). */
export function renderMarkdown(report: TransparencyReport, excerptLines = 6): string {
  const out: string[] = [];
  out.push(`# Transparency run`, '');
  out.push(
    `${report.meta.date}, Node ${report.meta.node}, layer ${report.meta.register}, ` +
      `dependencies as of ${report.meta.registryDate}, network: ${report.meta.network}.`,
    '',
  );
  for (const [name, description] of Object.entries(report.meta.configurations)) {
    out.push(`- **${name}**: ${description}`);
  }
  out.push('');
  out.push(
    '| suite | config | run | passed | failed | skipped | fail under layer, not plainly | pass plainly, not reported under layer | layer: processes, real frames, descriptors sent / received |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const run of report.runs) {
    const versus = (list: readonly unknown[] | undefined) => (list ? String(list.length) : '—');
    out.push(
      `| ${run.suite} | ${run.configuration} | ${runCell(run)} | ${run.passed} | ${run.failed} | ${run.skipped} | ${versus(run.failsUnderLayer)} | ${versus(run.missingUnderLayer)} | ${engaged(run)} |`,
    );
  }
  for (const run of report.runs) {
    const fails = run.failsUnderLayer ?? [];
    const missing = run.missingUnderLayer ?? [];
    if (fails.length === 0 && missing.length === 0) continue;
    out.push('', `## ${run.suite}, ${run.configuration}`, '');
    for (const regression of fails) {
      out.push(`- ${cell(regression.id)}`);
      const lines = regression.detail.slice(0, excerptLines);
      if (lines.length > 0) out.push('  ```', ...lines.map((l) => `  ${l}`), '  ```');
    }
    if (missing.length > 0) {
      out.push(
        `- not reported under the layer (${missing.length}): ${missing.slice(0, 20).map(cell).join('; ')}${missing.length > 20 ? '; …' : ''}`,
      );
    }
    const messages = Object.entries(run.odbMessages).sort((x, y) => y[1] - x[1]);
    if (messages.length > 0) {
      out.push('- ODB said (count: message):');
      for (const [message, n] of messages.slice(0, 8)) out.push(`  - ${n}: ${cell(message)}`);
    }
    out.push(`- logs: ${run.logs}`);
  }
  return out.join('\n') + '\n';
}
