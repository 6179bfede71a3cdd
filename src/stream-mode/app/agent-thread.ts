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
 * Starts the agent worker with `settings` (its workerData). It posts `ready` (AgentEvent) once its
 * store listens, and then answers the AgentMessages posted to it.
 */
export function startAgent(settings: AgentSettings): Worker {
  // The agent must not load the interposition itself (NODE_OPTIONS reaches workers too).
  return new Worker(new URL('../agent/worker.js', import.meta.url), {
    workerData: settings,
    execArgv: agentExecArgv(process.execArgv),
    env: { ...process.env, ODB_AGENT: '1' },
    // The agent's objects live about as long as a request, so many survive a scavenge, and V8
    // answers that by growing the young generation: by 30 MB in a proxy after ~40 000 requests.
    // A small one costs a few more (cheap) scavenges and keeps the agent's memory flat.
    resourceLimits: { maxYoungGenerationSizeMb: agentYoungGenerationMb },
  });
}
