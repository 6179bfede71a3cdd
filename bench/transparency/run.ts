/**
 * `npm run test:transparency -- [options]`: runs open-source projects' own test suites plainly
 * and under stream mode, and reports the tests that pass plainly but fail under the layer (the
 * layer promises that a program observes nothing new). `--help` lists the options; see
 * docs/stream-mode.md, "Transparency run".
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { z } from 'zod';
import { addOptions, defineOptions, optionTypes, resolveOptions } from '../../src/cli/options.js';
import {
  applies,
  checkLayerLoads,
  configurationNames,
  configurations,
  environmentFor,
  newClusterKey,
  type ConfigurationName,
} from './layer.js';
import { renderMarkdown, summarise, type RunSummary, type TransparencyReport } from './report.js';
import { runSuite, type SuiteRun } from './run-suite.js';
import { selectSuites, suites } from './suites.js';
import { prepareSuite, type PreparedSuite } from './workspace.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');

const list = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean));

const transparencyOptions = defineOptions({
  suites: {
    flag: '--suites <list>',
    description: `suites to run, of ${suites.map((s) => s.name).join(', ')} (empty: all)`,
    schema: list,
    default: '',
  },
  configs: {
    flag: '--configs <list>',
    description:
      'configurations: plain, a (64KiB), b (1KiB), c (fixed port lists; only suites with fixed ports); without plain, the last saved plain run is compared',
    schema: list.pipe(z.array(z.enum(configurationNames))),
    default: 'plain,a,b,c',
  },
  register: {
    flag: '--register <path>',
    description:
      "the layer's register.js (e.g. another worktree's dist/src/stream-mode/register.js); default: this one's",
    schema: optionTypes.path,
  },
  cache: {
    flag: '--cache <dir>',
    description: 'where suites are unpacked and installed, and runs are kept',
    schema: optionTypes.path,
    default: '.transparency',
  },
  registryDate: {
    flag: '--registry-date <date>',
    description: "npm install --before: the suites' dependencies as the registry had them then",
    schema: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'YYYY-MM-DD'),
    default: '2026-11-30',
  },
  timeout: {
    flag: '--timeout <duration>',
    description: 'per suite and configuration; the run is then killed and reported as timeout',
    schema: optionTypes.duration,
    default: '8min',
  },
  fileTimeout: {
    flag: '--file-timeout <duration>',
    description: 'per test file, for suites run file by file',
    schema: optionTypes.duration,
    default: '2min',
  },
  network: {
    flag: '--network <mode>',
    description:
      'loopback: each run in a network namespace holding only lo (needs root and unshare); host: none',
    schema: z.enum(['loopback', 'host']),
    default: 'loopback',
  },
  reportOnly: {
    flag: '--report-only',
    description: 'run nothing: rebuild the report from the runs saved in the cache',
    schema: optionTypes.flag,
    default: 'false',
  },
  out: {
    flag: '--out <file>',
    description: 'the JSON report (default <cache>/report.json; the markdown goes next to it)',
    schema: optionTypes.path,
  },
});

const log = (line: string) => process.stderr.write(`transparency: ${line}\n`);

/** A run saved for a later invocation (the plain baseline when `--configs` omits plain). */
function savedRunPath(cache: string, configuration: string, suite: string): string {
  return join(cache, 'runs', configuration, `${suite}.json`);
}

function loadRun(path: string): SuiteRun {
  return JSON.parse(readFileSync(path, 'utf8')) as SuiteRun;
}

async function main(): Promise<void> {
  const command = addOptions(
    new Command('test:transparency').description(
      'open-source test suites, plainly and under stream mode',
    ),
    transparencyOptions,
  );
  command.parse(process.argv);
  const o = resolveOptions(transparencyOptions, command);
  const cache = resolve(o.cache);
  const register = resolve(o.register ?? join(repo, 'dist', 'src', 'stream-mode', 'register.js'));
  if (!existsSync(register)) throw new Error(`no ${register}: run npm run build first`);
  mkdirSync(cache, { recursive: true });
  const keyFile = join(cache, 'cluster.key');
  newClusterKey(keyFile);
  const layer = { register, keyFile, reporter: join(here, 'engagement-reporter.js') };
  const isolate = o.network === 'loopback';
  const runsDir = join(cache, 'runs');

  const prepared: PreparedSuite[] = [];
  for (const spec of selectSuites(o.suites)) {
    prepared.push(await prepareSuite(spec, cache, o.registryDate, log));
  }
  for (const name of o.reportOnly ? [] : o.configs) {
    const configuration = configurations[name];
    if (!configuration.odb) continue;
    await checkLayerLoads(
      // Any port list will do for c: the check is only that the layer loads.
      environmentFor(configuration, { fixedPorts: [9] }, layer),
      cache,
      join(cache, `layer-check-${name}`),
      isolate,
    );
  }

  const runs = new Map<string, SuiteRun>();
  const key = (suite: string, configuration: string) => `${suite}/${configuration}`;
  for (const suite of prepared) {
    for (const name of o.configs) {
      if (!applies(configurations[name], suite.spec)) continue;
      const saved = savedRunPath(cache, name, suite.spec.name);
      if (o.reportOnly) {
        if (existsSync(saved)) runs.set(key(suite.spec.name, name), loadRun(saved));
        continue;
      }
      log(`${suite.spec.name}: ${name} (${configurations[name].description})`);
      const run = await runSuite(suite, configurations[name], {
        layer,
        runsDir,
        timeoutMs: o.timeout,
        fileTimeoutMs: o.fileTimeout,
        isolate,
      });
      writeFileSync(saved, JSON.stringify(run, null, 1));
      runs.set(key(suite.spec.name, name), run);
      log(`${suite.spec.name}: ${name} ${run.status} in ${Math.round(run.seconds)} s`);
    }
  }

  const summaries: RunSummary[] = [];
  for (const suite of prepared) {
    const name = suite.spec.name;
    let plain = runs.get(key(name, 'plain'));
    const saved = savedRunPath(cache, 'plain', name);
    if (!plain && existsSync(saved)) {
      plain = loadRun(saved);
      log(`${name}: comparing with the plain run saved in ${saved}`);
    }
    for (const configuration of o.configs as ConfigurationName[]) {
      const run = runs.get(key(name, configuration));
      if (run) summaries.push(summarise(run, plain));
    }
  }
  const report: TransparencyReport = {
    meta: {
      command: ['npm run test:transparency --', ...process.argv.slice(2)].join(' '),
      date: new Date().toISOString(),
      node: process.versions.node,
      register: o.reportOnly ? 'as saved with each run' : register,
      registryDate: o.registryDate,
      network: isolate ? 'loopback only (own network namespace per run)' : 'host',
      configurations: Object.fromEntries(
        o.configs.map((name) => [name, configurations[name].description]),
      ),
    },
    suites: prepared.map((p) => ({
      ...p.spec,
      testFiles: p.files,
      devDependencies: p.devDependencies,
    })),
    runs: summaries,
  };
  const out = resolve(o.out ?? join(cache, 'report.json'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(report, null, 1));
  const markdown = renderMarkdown(report);
  writeFileSync(out.replace(/\.json$/, '') + '.md', markdown);
  process.stdout.write(markdown);
  log(`report: ${out}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`transparency: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
