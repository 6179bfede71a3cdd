/**
 * Runs a suite's command where it can reach nothing but loopback, and ends everything it
 * started. Suites written for a networked machine also talk to public hosts (and one to a
 * private address, to provoke a connect timeout); in a network namespace of its own, holding only
 * `lo`, such a test fails at once in every configuration instead of sending traffic off the
 * machine. The command leads its own process group: on a timeout, and after it exits (servers a
 * test left behind), the whole group is killed.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/** How a command ended. */
export interface Ending {
  /** Exit status; null when killed by a signal. */
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly seconds: number;
}

export interface SandboxRun {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** stdout and stderr go to these files (a pipe would stay open as long as any leftover child). */
  readonly stdoutPath: string;
  readonly stderrPath: string;
  readonly timeoutMs: number;
  /** false: run on the host's network (for machines without unshare; see the docs). */
  readonly isolate: boolean;
}

// `unshare --net` execs sh, which brings up lo and execs the command: one process, one group.
const loopbackOnly = ['unshare', '--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh'];

// Groups still running: a runner stopped by ^C or SIGTERM takes them with it.
const running = new Set<number>();
let signalsWatched = false;

function watchSignals(): void {
  if (signalsWatched) return;
  signalsWatched = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const pid of running) killGroup(pid, 'SIGKILL');
      process.exit(130);
    });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}

/** Runs `argv` to its end or its timeout. */
export function runSandboxed(job: SandboxRun): Promise<Ending> {
  const argv = job.isolate ? [...loopbackOnly, ...job.argv] : [...job.argv];
  const out = openSync(job.stdoutPath, 'w');
  const err = openSync(job.stderrPath, 'w');
  const started = process.hrtime.bigint();
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: job.cwd,
    env: job.env,
    stdio: ['ignore', out, err],
    detached: true,
  });
  closeSync(out);
  closeSync(err);
  watchSignals();
  if (child.pid !== undefined) running.add(child.pid);
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid!, 'SIGTERM');
      setTimeout(() => killGroup(child.pid!, 'SIGKILL'), 5000).unref();
    }, job.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      running.delete(child.pid!);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      killGroup(child.pid!, 'SIGKILL');
      running.delete(child.pid!);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      resolve({ code, timedOut, seconds });
    });
  });
}
