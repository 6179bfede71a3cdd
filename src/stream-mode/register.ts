/**
 * `node --import odb/register app.js` (or NODE_OPTIONS="--import odb/register"): stream mode for
 * an unmodified program. Configured by ODB_CONFIG / ODB_* variables (see config.ts). Installing
 * twice is harmless: a versioned global marker makes the second import a no-op.
 */
import { isMainThread } from 'node:worker_threads';
import { pino } from 'pino';
import type { Logger } from '../core/log.js';
import { describeListenError, exitStatusFor, startupErrorLine } from '../core/startup-errors.js';
import { installHttpParser } from './app/http-parser.js';
import { installInterposition } from './app/interpose.js';
import { loadStreamConfig, type StreamConfig } from './config/config.js';
import { portHeldByAncestor } from './config/inherited-store.js';
import { PeerPolicy } from './app/peers.js';
import { StreamRuntime } from './app/runtime.js';
import { ServerRegistry } from './app/servers.js';
import { GracefulExit } from './app/shutdown.js';

/** What a process with stream mode installed exposes (for diagnostics and tests). */
export interface StreamInstallation {
  readonly runtime: StreamRuntime;
  /** Why HTTP bodies are not kept virtual through Node's parser, if they are not. */
  readonly httpParser: string | undefined;
}

export const registrationMarker = Symbol.for('odb.register.1');
type Global = typeof globalThis & {
  [registrationMarker]?: StreamInstallation | 'installing' | 'off';
};

async function install(): Promise<StreamInstallation | 'off'> {
  const config = await loadStreamConfig();
  // ODB's own messages go to stderr: the application owns stdout.
  const log = pino({ name: 'odb', level: config?.logLevel ?? 'warn' }, pino.destination(2));
  if (!config) {
    log.warn('stream mode is not configured (set ODB_KEY_FILE or ODB_CONFIG): running plain');
    return 'off';
  }
  const runtime = await startRuntime(config, log);
  if (!runtime.lazy) {
    log.warn(
      `lazy buffers unavailable (${runtime.lazyReason}): virtual data is fetched on arrival (correct, no bypass)`,
    );
  }
  const httpParser = installHttpParser(runtime);
  if (httpParser)
    log.warn(`${httpParser}: HTTP bodies are fetched when parsed (correct, no bypass)`);
  const servers = new ServerRegistry();
  installInterposition(runtime, new PeerPolicy(config), servers);
  const noGracefulExit = GracefulExit.install(runtime, servers, log);
  if (noGracefulExit) log.warn(`${noGracefulExit}: SIGTERM and SIGINT act as without ODB`);
  log.info({ endpoint: runtime.endpoint, features: runtime.features }, 'stream mode on');
  return { runtime, httpParser };
}

/**
 * Starts the runtime; a fixed store port held by an ancestor (the settings were inherited with
 * NODE_OPTIONS) is traded for a free one, advertised with the same host (inherited-store.ts).
 */
async function startRuntime(config: StreamConfig, log: Logger): Promise<StreamRuntime> {
  try {
    return await StreamRuntime.start(config, log);
  } catch (err) {
    const { listen, advertise } = config.store;
    const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
    const settings = ['ODB_STORE_LISTEN', 'ODB_CONFIG']
      .filter((name) => process.env[name] !== undefined)
      .map((name) => `${name}=${process.env[name]}`);
    if (inUse && listen.port !== 0 && portHeldByAncestor(listen.port, settings)) {
      log.info(
        `ODB_STORE_LISTEN port ${listen.port} is the parent process's store: this child's store takes a free port`,
      );
      const host = advertise?.slice(0, advertise.lastIndexOf(':'));
      const store = {
        ...config.store,
        listen: { ...listen, port: 0 },
        advertise: host === undefined ? undefined : `${host}:0`,
      };
      return StreamRuntime.start({ ...config, store }, log).catch((again: unknown) => {
        throw describeListenError(again, { ODB_STORE_LISTEN: listen }) ?? again;
      });
    }
    throw describeListenError(err, { ODB_STORE_LISTEN: listen }) ?? err;
  }
}

const global = globalThis as Global;
// Not in worker threads (the agent is one; NODE_OPTIONS reaches them all) and only once.
if (
  isMainThread &&
  process.env.ODB_AGENT === undefined &&
  global[registrationMarker] === undefined
) {
  global[registrationMarker] = 'installing';
  global[registrationMarker] = await install().catch(refuseToStart);
}

/**
 * Stream mode that cannot start as configured stops the program before it runs: one line on
 * stderr naming the setting and the fix, no stack trace, status 2 for a bad setting or key file.
 */
function refuseToStart(err: unknown): never {
  process.stderr.write(`${startupErrorLine(err)}\n`);
  process.exit(exitStatusFor(err));
}

/** The installation of this process, if stream mode is on. */
export function streamInstallation(): StreamInstallation | undefined {
  const value = global[registrationMarker];
  return typeof value === 'object' ? value : undefined;
}
