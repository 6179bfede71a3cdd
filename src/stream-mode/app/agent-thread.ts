/**
 * Starts a stream-mode process's agent worker (agent/worker.ts, named by URL only: the two threads
 * meet in agent/protocol.ts) with its settings. StreamRuntime.start calls it; tests start an agent
 * in their own process the same way.
 */
import { Worker } from 'node:worker_threads';
import type { AgentSettings } from '../agent/protocol.js';

/** The agent worker's young generation (V8 would let it grow to 48 MB). */
const agentYoungGenerationMb = 6;

/**
 * The application's Node options for the agent worker, without those that describe the
 * application's own entry (`node --input-type=module -e '…'`): a worker inherits them, and Node
 * refuses `--input-type` for a worker started from a file.
 */
export function agentExecArgv(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (['-e', '--eval', '-p', '--print', '--input-type'].includes(arg)) i++;
    else if (!arg.startsWith('--input-type=') && !/^--(eval|print)=/.test(arg)) out.push(arg);
  }
  return out;
}

/**
 * `execArgv` without the options Node named as invalid for a worker, and the separate value of
 * each (`--stack-size 2000`). `message`: ERR_WORKER_INVALID_EXEC_ARGV's, which lists them.
 */
export function withoutInvalidOptions(execArgv: readonly string[], message: string): string[] {
  const listed = message.slice(message.lastIndexOf(':') + 1).split(',');
  const invalid = new Set(listed.map((flag) => flag.trim()).filter((flag) => flag.length > 0));
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (!invalid.has(arg)) out.push(arg);
    else if (!arg.includes('=') && i + 1 < execArgv.length && !execArgv[i + 1]!.startsWith('-'))
      i++;
  }
  return out;
}

/**
 * Starts the agent worker with `settings` (its workerData). It posts `ready` (AgentEvent) once its
 * store listens, and then answers the AgentMessages posted to it.
 */
export function startAgent(settings: AgentSettings): Worker {
  // The agent must not load the interposition itself (NODE_OPTIONS reaches workers too).
  let execArgv = agentExecArgv(process.execArgv);
  // Node refuses process-wide options in a worker's execArgv (V8's --max-old-space-size,
  // --stack-size, --expose-gc, --title, ...), which the application may well have been started
  // with: they are left out (V8's flags are the process's anyway), as Node names them.
  for (let attempt = 0; ; attempt++) {
    try {
      return new Worker(new URL('../agent/worker.js', import.meta.url), {
        workerData: settings,
        execArgv,
        env: { ...process.env, ODB_AGENT: '1' },
        // The agent's objects live about as long as a request, so many survive a scavenge, and
        // V8 answers that by growing the young generation: by 30 MB in a proxy after ~40 000
        // requests. A small one costs a few more (cheap) scavenges and keeps its memory flat.
        resourceLimits: { maxYoungGenerationSizeMb: agentYoungGenerationMb },
      });
    } catch (err) {
      const invalid = (err as { code?: string }).code === 'ERR_WORKER_INVALID_EXEC_ARGV';
      const fewer = invalid ? withoutInvalidOptions(execArgv, (err as Error).message) : execArgv;
      if (attempt >= 2 || fewer.length === execArgv.length) throw err;
      execArgv = fewer;
    }
  }
}
