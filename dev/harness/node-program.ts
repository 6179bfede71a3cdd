/**
 * Ordinary Node.js programs as tiers: stream mode's promise is that a program needs no change,
 * so tests and benchmarks start plain scripts, with ODB added only by `--import odb/register`.
 * A program reports readiness by printing `listening <port>` on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TierHandle } from '../../src/demo/tier-handle.js';

/** The checkout's root: `--import odb/register` resolves from there (the package's own name). */
export const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** A running program. */
export interface NodeProgram extends TierHandle {
  readonly port: number;
  readonly child: ChildProcess;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

/** How to start a program. */
export interface NodeProgramOptions {
  /** Run under `--import odb/register` (stream mode). */
  readonly odb: boolean;
  /** Environment added to this process's own. */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

/** Starts `node [--import odb/register] <script>` and resolves once it printed `listening <port>`. */
export function startNodeProgram(
  name: string,
  script: string,
  options: NodeProgramOptions,
): Promise<NodeProgram> {
  const argv = [...(options.odb ? ['--import', 'odb/register'] : []), script];
  const child = spawn(process.execPath, argv, {
    cwd: packageRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise<NodeProgram>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start: ${stderr}`));
    }, options.timeoutMs ?? 15_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const port = /^listening (\d+)/.exec(line)?.[1];
      if (port === undefined) return;
      clearTimeout(timer);
      resolve({
        name,
        port: Number(port),
        child,
        addresses: { http: `127.0.0.1:${port}` },
        pids: () => [child.pid!],
        stderr: () => stderr,
        exited,
        stop,
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before listening: ${stderr}`));
    });
  });
}

/** Bytes a process has read and written with syscalls so far, sockets included (/proc/<pid>/io). */
export function processIo(pid: number): { read: number; written: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return {
    read: Number(/^rchar: (\d+)/m.exec(io)?.[1] ?? NaN),
    written: Number(/^wchar: (\d+)/m.exec(io)?.[1] ?? NaN),
  };
}
