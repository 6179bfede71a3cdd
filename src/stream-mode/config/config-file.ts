/**
 * The stream-mode configuration file (ODB_CONFIG): its schema and reader. Kept apart from
 * config.ts so that zod is loaded only by processes that use a file.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { invalid } from './invalid-setting.js';

const ports = z.union([z.literal('*'), z.array(z.coerce.number().int().min(1).max(65535))]);
const fileSchema = z.strictObject({
  keyFile: z.string().min(1),
  listen: ports.optional(),
  clientFacing: z.array(z.coerce.number().int().min(1).max(65535)).optional(),
  connect: z.union([z.literal('*'), z.array(z.string())]).optional(),
  probeWait: z.union([z.string(), z.number()]).optional(),
  threshold: z.union([z.string(), z.number()]).optional(),
  gather: z
    .strictObject({
      max: z.union([z.string(), z.number()]).optional(),
      wait: z.union([z.string(), z.number()]).optional(),
    })
    .optional(),
  store: z
    .strictObject({
      listen: z.string().optional(),
      advertise: z.string().optional(),
      budget: z.union([z.string(), z.number()]).optional(),
      ttl: z.union([z.string(), z.number()]).optional(),
    })
    .optional(),
  fetch: z
    .strictObject({
      timeout: z.union([z.string(), z.number()]).optional(),
      retries: z.number().int().min(0).optional(),
    })
    .optional(),
  drain: z
    .strictObject({
      timeout: z.union([z.string(), z.number()]).optional(),
      quiet: z.union([z.string(), z.number()]).optional(),
    })
    .optional(),
  native: z.boolean().optional(),
  logLevel: z.string().optional(),
});

/** What a configuration file may hold (every field optional but keyFile). */
export type ConfigFile = z.infer<typeof fileSchema>;

/** Reads and validates the file at `path`; errors name the file and the field. */
export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'no such file' : `cannot be read (${code})`;
    throw invalid(`ODB_CONFIG ${path}: ${problem}; give the path of a JSON config file`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalid(`ODB_CONFIG ${path}: not JSON (${(err as Error).message})`);
  }
  const result = fileSchema.safeParse(parsed);
  if (!result.success) {
    throw invalid(
      `ODB_CONFIG ${path}: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return result.data;
}
