/**
 * Real `odb` processes for the demo, the benchmarks and the end-to-end tests: spawn, wait for the
 * JSON `ready` log line (it carries the bound addresses), keep the logs, stop cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { OdbError } from '../core/errors.js';
import type { TierHandle } from './tier-handle.js';

/** Path of `bin/odb` in this checkout. */
export const odbBin = fileURLToPath(new URL('../../../bin/odb', import.meta.url));

/** A JSON log line of an odb process. */
export type LogLine = Record<string, unknown> & { msg?: string };

/** A running odb child process. */
export interface OdbProcess extends TierHandle {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every JSON line logged so far. */
  readonly logs: readonly LogLine[];
  /** Standard error so far. */
  stderr(): string;
  /** Resolves with the first log line (past or future) that `match` accepts. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startOdbProcess}. */
export interface StartOptions {
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Run through this command prefix (e.g. `ip netns exec NS`). */
  readonly prefix?: readonly string[];
}

/** Starts `odb <args…>` and resolves once it logged `ready`. */
export function startOdbProcess(
  name: string,
  args: readonly string[],
  options: StartOptions = {},
): Promise<OdbProcess> {
  const argv = [...(options.prefix ?? []), process.execPath, odbBin, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  const logs: LogLine[] = [];
  const watchers = new Set<(line: LogLine) => void>();
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text, raw: true };
    }
    logs.push(line);
    for (const watcher of watchers) watcher(line);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(watch);
        reject(
          new OdbError(
            'ODB_ERR_DEMO_PROCESS',
            `${name}: no matching log line within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      const watch = (line: LogLine): void => {
        if (!match(line)) return;
        clearTimeout(timer);
        watchers.delete(watch);
        resolve(line);
      };
      watchers.add(watch);
      void exited.then(() => {
        if (!watchers.has(watch)) return;
        clearTimeout(timer);
        watchers.delete(watch);
        reject(
          new OdbError(
            'ODB_ERR_DEMO_PROCESS',
            `${name} exited (${child.exitCode ?? child.signalCode}); stderr: ${stderr.slice(-2000)}`,
          ),
        );
      });
    });
  };

  const stop = async (graceMs = 5000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  return waitForLog((line) => line.msg === 'ready', options.timeoutMs ?? 15_000).then(
    (ready) => ({
      name,
      child,
      pid: child.pid!,
      pids: () => [child.pid!],
      addresses: (ready.addresses ?? {}) as Record<string, string>,
      logs,
      stderr: () => stderr,
      waitForLog,
      stop,
    }),
    async (err: unknown) => {
      child.kill('SIGKILL');
      await exited;
      throw err;
    },
  );
}
