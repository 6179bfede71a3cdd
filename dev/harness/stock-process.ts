/**
 * A third-party tier process (nginx, HAProxy) run in the foreground for a test or a bench: started
 * under its placement's prefix, ready once it listens, stopped by SIGTERM (SIGKILL after 5 s),
 * its working directory removed with it.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { waitForListen } from './free-port.js';
import type { Placement } from '../../src/demo/placement.js';
import type { TierHandle } from '../../src/demo/tier-handle.js';

/** Runs `command` until it listens on `port`; a failed start or `stop()` removes `dir`. */
export async function runStockProcess(
  name: string,
  command: readonly string[],
  placement: Placement,
  port: number,
  dir: string,
): Promise<TierHandle> {
  const argv = [...placement.prefix, ...command];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForListen(placement, port),
      exited.then(() => {
        throw new Error(`${command[0]} exited: ${stderr}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    name,
    addresses: { http: `${placement.host}:${port}` },
    pids: () => [child.pid!, ...childPids(child.pid!)],
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Direct children of `pid` (nginx workers). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
