/**
 * Stream-mode configuration: a JSON file named by ODB_CONFIG and/or ODB_* environment variables
 * (variables win). Validated strictly; errors name the setting.
 *
 *   ODB_KEY_FILE        cluster key file (required)
 *   ODB_LISTEN          ports whose accepted connections may speak ODB: "8080,8090", or "*" (all
 *                       but ODB_CLIENT_FACING); default none
 *   ODB_CLIENT_FACING   ports that never speak ODB (with ODB_LISTEN=*)
 *   ODB_CONNECT         peers to speak ODB to: "10.0.0.5:8080,:8090" (":port" = any host), or "*"
 *                       (learn which peers answer a hello, on a separate probe connection)
 *   ODB_PROBE_WAIT      with "*": how long a connection to a peer not known yet waits for the
 *                       probe's verdict (default 50ms; 0: never wait)
 *   ODB_THRESHOLD       smallest write sent as a descriptor (default 64KiB)
 *   ODB_GATHER          largest payload gathered from consecutive large writes (default 4MiB;
 *                       0: each write its own payload); ODB_GATHER_WAIT: how long gathered
 *                       bytes wait for the next write (default 20ms; 2 × that at most from
 *                       the first of them)
 *   ODB_STORE_LISTEN    this process's buffer store (default 127.0.0.1:0)
 *   ODB_STORE_ADVERTISE endpoint written into descriptors (default: the bound address)
 *   ODB_STORE_BUDGET    memory for payloads sent as descriptors (default 256MiB)
 *   ODB_STORE_TTL       how long an unreleased payload stays fetchable (default 120s)
 *   ODB_FETCH_TIMEOUT   budget per fetch attempt (default 5s); ODB_FETCH_RETRIES (default 2)
 *   ODB_DRAIN_TIMEOUT   on SIGTERM/SIGINT, when the application has no handler of its own: how long
 *                       in-flight work may finish before the process exits (default 10s);
 *                       ODB_DRAIN_QUIET: how long its store waits for a peer to start a fetch
 *                       once nothing else is left (default 1s)
 *   ODB_NATIVE          "off": do not load the native addon (no lazy buffers: virtual data is
 *                       fetched on arrival; own payloads in SharedArrayBuffers); default on
 *   ODB_LOG_LEVEL       pino level for ODB's own messages (default warn)
 */
import { parseDuration, parseSize } from '../../core/units.js';
import { isOdbError } from '../../core/errors.js';
import { parseHostPort, type HostPort } from '../../core/net/address.js';
import { invalid } from './invalid-setting.js';

/** A peer pattern: a host and port, or any host on a port. */
export interface PeerPattern {
  readonly host: string | undefined;
  readonly port: number;
}

/** Validated stream-mode settings. */
export interface StreamConfig {
  readonly keyFile: string;
  /** The setting that named the key file, for messages: `ODB_KEY_FILE` or the config file's key. */
  readonly keyFileSetting?: string;
  readonly listen: readonly number[] | '*';
  readonly clientFacing: readonly number[];
  readonly connect: readonly PeerPattern[] | '*';
  /** With `connect: '*'`: how long a connection to an unknown peer waits for the probe. */
  readonly probeWaitMs: number;
  readonly thresholdBytes: number;
  /** Consecutive large writes share a payload up to `maxBytes` (0: off); see PayloadGatherer. */
  readonly gather: { readonly maxBytes: number; readonly waitMs: number };
  readonly store: {
    readonly listen: HostPort;
    readonly advertise: string | undefined;
    readonly budgetBytes: number;
    readonly ttlMs: number;
  };
  readonly fetch: { readonly timeoutMs: number; readonly retries: number };
  /** Graceful exit on SIGTERM/SIGINT when the application has no handler (see shutdown.ts). */
  readonly drain: { readonly timeoutMs: number; readonly quietMs: number };
  /** Load the native addon (lazy buffers, own-payload memory) if it is there. */
  readonly native: boolean;
  readonly logLevel: string;
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A variable's `*` or comma-separated list; undefined when it is not set. */
function starOrList(text: string | undefined): '*' | string[] | undefined {
  if (text === undefined) return undefined;
  return text === '*' ? '*' : list(text);
}

function onOff(text: string | undefined, what: string): boolean | undefined {
  if (text === undefined) return undefined;
  if (text === 'on' || text === 'off') return text === 'on';
  throw invalid(`${what} ${text} is neither on nor off`);
}

function port(value: string | number, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw invalid(`${what} ${value} is not a port`);
  return n;
}

function count(value: string | number, what: string): number {
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${what} ${value} is not a whole number`);
  return n;
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevel(value: string, what: string): string {
  if (!logLevels.includes(value))
    throw invalid(`${what} ${value} is not one of ${logLevels.join(', ')}`);
  return value;
}

function advertised(value: string | undefined, what: string): string | undefined {
  if (value !== undefined) parseHostPort(value, what);
  return value;
}

function peer(text: string): PeerPattern {
  if (/^:\d+$/.test(text)) return { host: undefined, port: Number(text.slice(1)) };
  const { host, port } = parseHostPort(text, 'ODB_CONNECT entry');
  return { host, port };
}

/** Reads the configuration; undefined when nothing configures stream mode. */
export async function loadStreamConfig(
  env: NodeJS.ProcessEnv = process.env,
): Promise<StreamConfig | undefined> {
  // The file's schema (zod) is loaded only when there is a file: this module runs in every
  // application process, and zod alone adds about 3 MB to a heap that V8 collects more eagerly
  // once it passes 8 MB.
  const file = env.ODB_CONFIG
    ? (await import('./config-file.js')).readConfigFile(env.ODB_CONFIG)
    : undefined;
  const keyFile = env.ODB_KEY_FILE ?? file?.keyFile;
  if (!keyFile) {
    if (env.ODB_LISTEN || env.ODB_CONNECT)
      throw invalid('ODB_KEY_FILE (or keyFile in ODB_CONFIG) is required');
    return undefined;
  }
  const listenRaw = starOrList(env.ODB_LISTEN) ?? file?.listen ?? [];
  const listen = listenRaw === '*' ? '*' : listenRaw.map((p) => port(p, 'ODB_LISTEN entry'));
  const connectRaw = starOrList(env.ODB_CONNECT) ?? file?.connect ?? [];
  try {
    return {
      keyFile,
      keyFileSetting:
        env.ODB_KEY_FILE !== undefined ? 'ODB_KEY_FILE' : `keyFile of ODB_CONFIG ${env.ODB_CONFIG}`,
      listen,
      clientFacing:
        env.ODB_CLIENT_FACING !== undefined
          ? list(env.ODB_CLIENT_FACING).map((p) => port(p, 'ODB_CLIENT_FACING entry'))
          : (file?.clientFacing ?? []),
      connect: connectRaw === '*' ? '*' : connectRaw.map(peer),
      probeWaitMs: parseDuration(env.ODB_PROBE_WAIT ?? file?.probeWait ?? '50ms', 'ODB_PROBE_WAIT'),
      thresholdBytes: parseSize(env.ODB_THRESHOLD ?? file?.threshold ?? '64KiB', 'ODB_THRESHOLD'),
      gather: {
        maxBytes: parseSize(env.ODB_GATHER ?? file?.gather?.max ?? '4MiB', 'ODB_GATHER'),
        waitMs: parseDuration(
          env.ODB_GATHER_WAIT ?? file?.gather?.wait ?? '20ms',
          'ODB_GATHER_WAIT',
        ),
      },
      store: {
        listen: parseHostPort(
          env.ODB_STORE_LISTEN ?? file?.store?.listen ?? '127.0.0.1:0',
          'ODB_STORE_LISTEN',
        ),
        advertise: advertised(
          env.ODB_STORE_ADVERTISE ?? file?.store?.advertise,
          'ODB_STORE_ADVERTISE',
        ),
        budgetBytes: parseSize(
          env.ODB_STORE_BUDGET ?? file?.store?.budget ?? '256MiB',
          'ODB_STORE_BUDGET',
        ),
        ttlMs: parseDuration(env.ODB_STORE_TTL ?? file?.store?.ttl ?? '120s', 'ODB_STORE_TTL'),
      },
      fetch: {
        timeoutMs: parseDuration(
          env.ODB_FETCH_TIMEOUT ?? file?.fetch?.timeout ?? '5s',
          'ODB_FETCH_TIMEOUT',
        ),
        retries: count(env.ODB_FETCH_RETRIES ?? file?.fetch?.retries ?? 2, 'ODB_FETCH_RETRIES'),
      },
      drain: {
        timeoutMs: parseDuration(
          env.ODB_DRAIN_TIMEOUT ?? file?.drain?.timeout ?? '10s',
          'ODB_DRAIN_TIMEOUT',
        ),
        quietMs: parseDuration(
          env.ODB_DRAIN_QUIET ?? file?.drain?.quiet ?? '1s',
          'ODB_DRAIN_QUIET',
        ),
      },
      native: onOff(env.ODB_NATIVE, 'ODB_NATIVE') ?? file?.native ?? true,
      logLevel: logLevel(env.ODB_LOG_LEVEL ?? file?.logLevel ?? 'warn', 'ODB_LOG_LEVEL'),
    };
  } catch (err) {
    throw isOdbError(err) ? err : invalid(String(err));
  }
}
