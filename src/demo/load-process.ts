/** Runs `odb load` as its own process, so the generator's CPU never counts as a tier's. */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { OdbError } from '../core/errors.js';
import type { LoadResult } from '../loadgen/load.js';
import { odbBin } from './tier-process.js';

/**
 * Runs `odb load <args>` (under `prefix`, e.g. on the testbed's client host); calls `onMeasuring`
 * when its warm-up ends; resolves with its result.
 */
export function runLoadProcess(
  args: readonly string[],
  onMeasuring?: () => void | Promise<void>,
  prefix: readonly string[] = [],
): Promise<LoadResult> {
  const argv = [...prefix, process.execPath, odbBin, 'load', ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  let result: LoadResult | undefined;
  let measuring: Promise<void> = Promise.resolve();
  createInterface({ input: child.stdout }).on('line', (text) => {
    const line = JSON.parse(text) as { event: string } & LoadResult;
    if (line.event === 'measuring') measuring = Promise.resolve(onMeasuring?.());
    if (line.event === 'result') result = line;
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      measuring.then(() => {
        if (code === 0 && result) resolve(result);
        else {
          reject(
            new OdbError('ODB_ERR_DEMO_PROCESS', `odb load exited ${code}: ${stderr.slice(-2000)}`),
          );
        }
      }, reject);
    });
  });
}
