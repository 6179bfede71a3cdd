/**
 * One table per command describes every option once: its flag, its config-file key, its
 * default and its validator. From it come the commander flags (and `--help`), the strict
 * config-file schema (unknown keys are errors), and the typed, validated values.
 * Precedence: flag > config file > default.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { OdbError, isOdbError } from '../core/errors.js';
import { parseHostPort } from '../core/net/address.js';
import { parseDuration, parseSize } from '../core/units.js';

/** One option of a command. */
export interface OptionSpec<T = unknown> {
  /** Flag with its argument, e.g. `--listen <host:port>`. */
  readonly flag: string;
  readonly description: string;
  /** Validates a raw value: a string from the command line, or a JSON value from a config file. */
  readonly schema: z.ZodType<T, unknown>;
  /** Raw default (validated like any other value); absent means no value unless `required`. */
  readonly default?: string | number | readonly string[];
  readonly repeatable?: boolean;
  readonly required?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;
/** The validated values of a table. */
export type OptionValues<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K] extends OptionSpec<infer V> ? V : never;
};

/** Declares a table (keeps the literal keys for typing). */
export function defineOptions<T extends OptionTable>(table: T): T {
  return Object.freeze(table);
}

function fromParser<T>(parse: (raw: string | number) => T): z.ZodType<T, unknown> {
  return z.union([z.string(), z.number()]).transform((raw, ctx) => {
    try {
      return parse(raw);
    } catch (err) {
      const message = isOdbError(err) ? (err.detail ?? err.message) : (err as Error).message;
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
  });
}

/** Validators shared by the commands. */
export const optionTypes = {
  hostPort: fromParser((raw) => parseHostPort(String(raw))),
  size: fromParser((raw) => parseSize(raw)),
  duration: fromParser((raw) => parseDuration(raw)),
  count: z.coerce.number().int().positive(),
  /** A count where 0 means no limit. */
  countOrZero: z.coerce.number().int().nonnegative(),
  mode: z.enum(['odb', 'vanilla']),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  path: z.string().min(1),
  text: z.string(),
  urls: z.array(z.url({ protocol: /^https?$/ })).min(1),
  endpoints: z.array(
    z.string().regex(/^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/, 'host:port'),
  ),
  flag: z.union([z.boolean(), z.enum(['true', 'false']).transform((s) => s === 'true')]),
  keyId: fromParser((raw) => {
    const id = /^\d{1,5}$/.test(String(raw)) ? Number(raw) : NaN;
    if (!(id <= 0xffff)) {
      throw new OdbError(
        'ODB_ERR_INVALID_OPTION',
        `${JSON.stringify(raw)} is not a key id (0..65535)`,
      );
    }
    return id;
  }),
  symlinks: z.enum(['inside', 'none', 'any']),
} as const;

/** Every command also takes `--config FILE`. */
const configFlag = '--config <file>';

/** Adds the table's flags (and `--config`) to a commander command. */
export function addOptions(command: Command, table: OptionTable): Command {
  command.option(configFlag, 'JSON config file; its keys are the camelCase names of these options');
  for (const spec of Object.values(table)) {
    const shownDefault =
      spec.default === undefined ? '' : ` (default: ${[spec.default].flat().join(', ') || 'none'})`;
    const description = spec.description + shownDefault + (spec.required ? ' [required]' : '');
    if (spec.repeatable) {
      command.option(spec.flag, description + ' [repeatable]', (v: string, prev: string[] = []) => [
        ...prev,
        v,
      ]);
    } else {
      command.option(spec.flag, description);
    }
  }
  return command;
}

function flagName(spec: OptionSpec): string {
  return spec.flag.split(/[ =]/)[0]!;
}

function invalid(message: string): OdbError {
  return new OdbError('ODB_ERR_INVALID_OPTION', message);
}

/**
 * Reads the config file (if any) and merges flags over it and defaults under it; validates all.
 * `preset` (raw values, e.g. a benchmark profile) sits between the defaults and the file.
 */
export function resolveOptions<T extends OptionTable>(
  table: T,
  command: Command,
  preset: Readonly<Record<string, unknown>> = {},
): OptionValues<T> {
  const cli = command.opts<Record<string, unknown>>();
  const raw: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    if (spec.default !== undefined) raw[key] = spec.default;
  }
  Object.assign(raw, preset);
  const configPath = cli.config as string | undefined;
  if (configPath) Object.assign(raw, readConfigFile(table, configPath));
  for (const key of Object.keys(table)) {
    if (command.getOptionValueSource(key) === 'cli') raw[key] = cli[key];
  }
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    if (raw[key] === undefined) {
      if (spec.required) throw invalid(`${flagName(spec)} is required`);
      continue;
    }
    const result = spec.schema.safeParse(raw[key]);
    if (!result.success) {
      throw invalid(`${flagName(spec)}: ${result.error.issues.map((i) => i.message).join('; ')}`);
    }
    values[key] = result.data;
  }
  return values as OptionValues<T>;
}

/** Parses a config file against the table: unknown keys and wrong types are errors. */
export function readConfigFile(table: OptionTable, path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'no such file' : `cannot be read (${code})`;
    throw invalid(`--config ${path}: ${problem}; give the path of a JSON config file`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalid(`--config ${path}: not JSON (${(err as Error).message})`);
  }
  const shape = Object.fromEntries(
    Object.entries(table).map(([key, spec]) => [key, spec.schema.optional()]),
  );
  const result = z.strictObject(shape).safeParse(parsed);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw invalid(`--config ${path}: ${issues.join('; ')}; see --help for the keys`);
  }
  // Keep the raw values: they are validated once more, together with flags and defaults.
  return parsed as Record<string, unknown>;
}
