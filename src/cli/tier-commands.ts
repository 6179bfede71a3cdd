/** `odb be`, `odb is`, `odb fe`: option tables and start-up of the tiers. */
import { realpathSync } from 'node:fs';
import { sep } from 'node:path';
import type { Command } from 'commander';
import { OdbError } from '../core/errors.js';
import { defaultThresholdBytes } from '../header-mode/backend.js';
import { loadKeyring, type Keyring } from '../core/keys/keyring.js';
import { createLogger, type Logger } from '../core/log.js';
import { defaultSendMinBytesPerSecond, defaultSendTimeoutMs } from '../core/net/send-rate.js';
import { TlsCredentials } from '../core/net/tls-credentials.js';
import { defaultStoreConnections, defaultStoreQueueTimeoutMs } from '../store/client.js';
import { defaultFetchLimits } from '../store/fetch-limits.js';
import { defaultStoreSendTimeoutMs } from '../store/server.js';
import { defaultBudgetBytes, defaultTtlMs } from '../store/store.js';
import { startBackend } from '../tiers/be.js';
import { startFrontend } from '../tiers/fe.js';
import { startIntermediate } from '../tiers/is.js';
import { defaultListenerLimits, type ListenerLimits } from '../http-core/listener-limits.js';
import { defaultUpstreamQueue, type UpstreamQueueLimits } from '../tiers/http-relay.js';
import {
  addOptions,
  defineOptions,
  optionTypes,
  resolveOptions,
  type OptionValues,
} from './options.js';
import { serve } from './serve.js';
import { requireDirectory } from '../core/startup-errors.js';

const common = {
  sendTimeout: {
    flag: '--send-timeout <duration>',
    description:
      'a client with response bytes queued must keep taking them: cut when its credit (this long, ' +
      'earned back at --send-min-rate) runs out; 0: never',
    schema: optionTypes.duration,
    default: `${defaultSendTimeoutMs / 1000}s`,
  },
  sendMinRate: {
    flag: '--send-min-rate <size>',
    description:
      'bytes per second a client must take while bytes are queued for it; 0: any progress',
    schema: optionTypes.size,
    default: `${defaultSendMinBytesPerSecond}B`,
  },
  metricsListen: {
    flag: '--metrics-listen <host:port>',
    description: 'serve Prometheus metrics at /metrics on this address',
    schema: optionTypes.hostPort,
  },
  logLevel: {
    flag: '--log-level <level>',
    description: 'fatal, error, warn, info, debug, trace or silent',
    schema: optionTypes.logLevel,
    default: 'info',
  },
  drainTimeout: {
    flag: '--drain-timeout <duration>',
    description: 'on SIGTERM/SIGINT, how long responses in flight may take to finish',
    schema: optionTypes.duration,
    default: '10s',
  },
} as const;

const l = defaultListenerLimits;
const seconds = (ms: number): string => `${ms / 1000}s`;
/** Limits of each tier's client-facing listener (docs/security.md, "Limits and their defaults"). */
const listenerLimitOptions = {
  maxConnections: {
    flag: '--max-connections <n>',
    description: 'open client connections; more are closed at once',
    schema: optionTypes.count,
    default: l.maxConnections,
  },
  maxHeaderSize: {
    flag: '--max-header-size <size>',
    description: 'request line plus headers; larger heads get 431',
    schema: optionTypes.size,
    default: `${l.maxHeaderBytes / 1024}KiB`,
  },
  maxHeaders: {
    flag: '--max-headers <n>',
    description: 'header fields per request; more get 431',
    schema: optionTypes.count,
    default: l.maxHeaders,
  },
  maxRequestsPerConnection: {
    flag: '--max-requests-per-connection <n>',
    description: 'requests served on one client connection before it is closed (0: no limit)',
    schema: optionTypes.countOrZero,
    default: l.maxRequestsPerConnection,
  },
  maxPipelined: {
    flag: '--max-pipelined <n>',
    description:
      'requests a client may send ahead on one connection while one is handled; more close it',
    schema: optionTypes.count,
    default: l.maxPipelined,
  },
  headerTimeout: {
    flag: '--header-timeout <duration>',
    description: 'time to send a request head (also: idle time before the first request)',
    schema: optionTypes.duration,
    default: seconds(l.headerTimeoutMs),
  },
  keepaliveTimeout: {
    flag: '--keepalive-timeout <duration>',
    description: 'idle time between requests on a client connection',
    schema: optionTypes.duration,
    default: seconds(l.keepAliveTimeoutMs),
  },
  bodyTimeout: {
    flag: '--body-timeout <duration>',
    description: 'time a request body may take, plus one second per --body-min-rate bytes received',
    schema: optionTypes.duration,
    default: seconds(l.bodyTimeoutMs),
  },
  bodyMinRate: {
    flag: '--body-min-rate <size>',
    description: 'bytes per second of request body that extend --body-timeout',
    schema: optionTypes.size,
    default: `${l.bodyMinRate / 1024}KiB`,
  },
} as const;

/** Bounds of the wait for a free upstream connection (fe, is). */
const upstreamQueueOptions = {
  upstreamQueueMax: {
    flag: '--upstream-queue-max <n>',
    description: 'requests waiting for a free upstream connection; more get 503 at once',
    schema: optionTypes.count,
    default: defaultUpstreamQueue.maxQueued,
  },
  upstreamQueueTimeout: {
    flag: '--upstream-queue-timeout <duration>',
    description: 'longest wait for a free upstream connection; past it the client gets 503',
    schema: optionTypes.duration,
    default: seconds(defaultUpstreamQueue.timeoutMs),
  },
} as const;

type LimitValues = OptionValues<typeof listenerLimitOptions>;

function listenerLimits(o: LimitValues): ListenerLimits {
  return {
    maxConnections: o.maxConnections,
    maxHeaderBytes: o.maxHeaderSize,
    maxHeaders: o.maxHeaders,
    maxRequestsPerConnection: o.maxRequestsPerConnection,
    maxPipelined: o.maxPipelined,
    headerTimeoutMs: o.headerTimeout,
    keepAliveTimeoutMs: o.keepaliveTimeout,
    bodyTimeoutMs: o.bodyTimeout,
    bodyMinRate: o.bodyMinRate,
  };
}

function upstreamQueue(o: OptionValues<typeof upstreamQueueOptions>): UpstreamQueueLimits {
  return { maxQueued: o.upstreamQueueMax, timeoutMs: o.upstreamQueueTimeout };
}

const keyFile = {
  flag: '--key-file <file>',
  description: 'cluster key file (odb keygen --out FILE); required in odb mode',
  schema: optionTypes.path,
} as const;

const mode = {
  flag: '--mode <mode>',
  description: 'odb or vanilla',
  schema: optionTypes.mode,
  default: 'odb',
} as const;

export const backendOptions = defineOptions({
  listen: {
    flag: '--listen <host:port>',
    description: 'HTTP listen address',
    schema: optionTypes.hostPort,
    default: '127.0.0.1:8080',
  },
  root: {
    flag: '--root <dir>',
    description: 'directory to serve',
    schema: optionTypes.path,
    default: '.',
  },
  storeListen: {
    flag: '--store-listen <host:port>',
    description: 'buffer-store listen address (odb mode)',
    schema: optionTypes.hostPort,
    default: '127.0.0.1:8081',
  },
  storeAdvertise: {
    flag: '--store-advertise <host:port>',
    description: 'store endpoint written into descriptors (default: the bound store address)',
    schema: optionTypes.text.regex(/^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/, 'host:port'),
  },
  keyFile,
  mode,
  threshold: {
    flag: '--threshold <size>',
    description: 'smallest body sent as a descriptor',
    schema: optionTypes.size,
    default: `${defaultThresholdBytes / 1024}KiB`,
  },
  storeBudget: {
    flag: '--store-budget <size>',
    description: 'memory the buffer store may hold; beyond it payloads go real',
    schema: optionTypes.size,
    default: `${defaultBudgetBytes / 1024 ** 2}MiB`,
  },
  storeTtl: {
    flag: '--store-ttl <duration>',
    description: 'how long an unreleased payload stays fetchable',
    schema: optionTypes.duration,
    default: `${defaultTtlMs / 1000}s`,
  },
  symlinks: {
    flag: '--symlinks <policy>',
    description:
      'symbolic links under --root: inside (followed if they stay in it), none (never), any',
    schema: optionTypes.symlinks,
    default: 'inside',
  },
  ...listenerLimitOptions,
  storeMaxFetches: {
    flag: '--store-max-fetches <n>',
    description: 'fetches the store streams at once; beyond, ODB_ERR_BUSY',
    schema: optionTypes.count,
    default: defaultFetchLimits.maxFetches,
  },
  storeMaxFetchesPerPayload: {
    flag: '--store-max-fetches-per-payload <n>',
    description: 'fetches of one payload at once; beyond, ODB_ERR_BUSY',
    schema: optionTypes.count,
    default: defaultFetchLimits.maxFetchesPerPayload,
  },
  storeMaxFetchesPerPeer: {
    flag: '--store-max-fetches-per-peer <n>',
    description: 'fetches from one remote address at once; beyond, ODB_ERR_BUSY',
    schema: optionTypes.count,
    default: defaultFetchLimits.maxFetchesPerPeer,
  },
  storeSendTimeout: {
    flag: '--store-send-timeout <duration>',
    description:
      'cut a store connection whose peer takes no byte for this long (keep it above the front ' +
      "ends' --send-timeout); 0: never",
    schema: optionTypes.duration,
    default: `${defaultStoreSendTimeoutMs / 1000}s`,
  },
  ...common,
});

export const intermediateOptions = defineOptions({
  listen: {
    flag: '--listen <host:port>',
    description: 'HTTP listen address',
    schema: optionTypes.hostPort,
    default: '127.0.0.1:8090',
  },
  upstream: {
    flag: '--upstream <url>',
    description: 'upstream origin (http://host:port), used round robin',
    schema: optionTypes.urls,
    repeatable: true,
    required: true,
  },
  connections: {
    flag: '--connections <n>',
    description: 'keep-alive connections per upstream',
    schema: optionTypes.count,
    default: 64,
  },
  ...upstreamQueueOptions,
  ...listenerLimitOptions,
  ...common,
});

export const frontendOptions = defineOptions({
  listen: {
    flag: '--listen <host:port>',
    description: 'HTTP listen address',
    schema: optionTypes.hostPort,
    default: '127.0.0.1:8000',
  },
  upstream: {
    flag: '--upstream <url>',
    description: 'upstream origin (http://host:port)',
    schema: optionTypes.urls.max(1).transform((urls) => urls[0]!),
    repeatable: true,
    required: true,
  },
  tlsCert: {
    flag: '--tls-cert <file>',
    description:
      'serve HTTPS with this PEM certificate (chain); with --tls-key; reloaded on SIGHUP and when the file changes',
    schema: optionTypes.path,
  },
  tlsKey: {
    flag: '--tls-key <file>',
    description: 'PEM private key of --tls-cert (unencrypted); with --tls-cert',
    schema: optionTypes.path,
  },
  keyFile,
  mode,
  storeAllow: {
    flag: '--store-allow <host:port>',
    description:
      'buffer-store endpoint descriptors may name (the --store-listen/--store-advertise of each odb be); required in odb mode',
    schema: optionTypes.endpoints,
    repeatable: true,
    default: [],
  },
  retryWithoutOffer: {
    flag: '--retry-without-offer <true|false>',
    description:
      'send a GET/HEAD without a body again, without the offer, when its descriptor is refused or its store fails before the response starts',
    schema: optionTypes.flag,
    default: 'true',
  },
  fetchTimeout: {
    flag: '--fetch-timeout <duration>',
    description: 'budget for reaching a store and getting its answer',
    schema: optionTypes.duration,
    default: '5s',
  },
  storeConnections: {
    flag: '--store-connections <n>',
    description: 'fetches at once per store, one connection each (a slow client holds one)',
    schema: optionTypes.count,
    default: defaultStoreConnections,
  },
  storeQueueTimeout: {
    flag: '--store-queue-timeout <duration>',
    description: 'how long a fetch waits for a free store connection; then 502',
    schema: optionTypes.duration,
    default: `${defaultStoreQueueTimeoutMs / 1000}s`,
  },
  connections: {
    flag: '--connections <n>',
    description: 'keep-alive connections to the upstream',
    schema: optionTypes.count,
    default: 64,
  },
  ...upstreamQueueOptions,
  ...listenerLimitOptions,
  ...common,
});

function keyringFor(modeValue: string, path: string | undefined): Keyring | undefined {
  if (modeValue !== 'odb') return undefined;
  if (!path) {
    throw new OdbError(
      'ODB_ERR_KEY_FILE',
      'odb mode needs --key-file (create one with: odb keygen --out FILE)',
    );
  }
  return loadKeyring(path, { setting: '--key-file' });
}

/** The TLS pair of `--tls-cert`/`--tls-key`: both or neither; checked now (exit 2 if bad). */
function tlsFor(
  cert: string | undefined,
  key: string | undefined,
  logger: Logger,
): TlsCredentials | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    const [given, missing] =
      cert === undefined ? ['--tls-key', '--tls-cert'] : ['--tls-cert', '--tls-key'];
    throw new OdbError(
      'ODB_ERR_INVALID_OPTION',
      `${given} needs ${missing}: give both the PEM certificate and its private key ` +
        '(or neither, for plain HTTP)',
    );
  }
  return TlsCredentials.load({ certFile: cert, keyFile: key }, logger);
}

/** What SIGHUP reloads: the key file, when the tier has one. */
function reloadable(
  path: string | undefined,
  keyring: Keyring | undefined,
): { path: string; keyring: Keyring } | undefined {
  return path && keyring ? { path, keyring } : undefined;
}

/** True when `path` (resolved) lies under the directory `dir` (resolved). */
function liesUnder(path: string, dir: string): boolean {
  try {
    const from = realpathSync(dir);
    return realpathSync(path).startsWith(from.endsWith(sep) ? from : from + sep);
  } catch {
    return false;
  }
}

/** Registers the three tier commands. */
export function registerTierCommands(program: Command): void {
  const be = program
    .command('be')
    .description('back end: serves files and /bytes/<n>; in odb mode answers with descriptors');
  addOptions(be, backendOptions).action(async () => {
    const o = resolveOptions(backendOptions, be);
    const logger = createLogger('odb-be', o.logLevel);
    const keyring = keyringFor(o.mode, o.keyFile);
    requireDirectory(o.root, '--root');
    if (o.keyFile && liesUnder(o.keyFile, o.root)) {
      logger.warn(
        { keyFile: o.keyFile, root: o.root },
        'the key file lies under --root: it is never served, but move it out of the served tree',
      );
    }
    await serve({
      name: 'be',
      logger,
      drainTimeoutMs: o.drainTimeout,
      listeners: {
        '--listen': o.listen,
        '--store-listen': o.mode === 'odb' ? o.storeListen : undefined,
        '--metrics-listen': o.metricsListen,
      },
      keys: reloadable(o.keyFile, keyring),
      start: () =>
        startBackend({
          listen: o.listen,
          root: o.root,
          mode: o.mode,
          storeListen: o.storeListen,
          storeAdvertise: o.storeAdvertise,
          keyring,
          thresholdBytes: o.threshold,
          storeBudgetBytes: o.storeBudget,
          storeTtlMs: o.storeTtl,
          limits: listenerLimits(o),
          storeFetchLimits: {
            maxFetches: o.storeMaxFetches,
            maxFetchesPerPayload: o.storeMaxFetchesPerPayload,
            maxFetchesPerPeer: o.storeMaxFetchesPerPeer,
          },
          storeSendTimeoutMs: o.storeSendTimeout,
          sendRate: { timeoutMs: o.sendTimeout, minBytesPerSecond: o.sendMinRate },
          keyFile: o.keyFile,
          symlinks: o.symlinks,
          drainTimeoutMs: o.drainTimeout,
          metricsListen: o.metricsListen,
          logger,
        }),
    });
  });

  const is = program
    .command('is')
    .description('intermediate tier: plain reverse proxy / round-robin balancer');
  addOptions(is, intermediateOptions).action(async () => {
    const o = resolveOptions(intermediateOptions, is);
    const logger = createLogger('odb-is', o.logLevel);
    await serve({
      name: 'is',
      logger,
      drainTimeoutMs: o.drainTimeout,
      listeners: { '--listen': o.listen, '--metrics-listen': o.metricsListen },
      start: () =>
        startIntermediate({
          listen: o.listen,
          upstreams: o.upstream,
          connectionsPerUpstream: o.connections,
          upstreamQueue: upstreamQueue(o),
          limits: listenerLimits(o),
          sendRate: { timeoutMs: o.sendTimeout, minBytesPerSecond: o.sendMinRate },
          metricsListen: o.metricsListen,
          logger,
        }),
    });
  });

  const fe = program
    .command('fe')
    .description('front end: gateway; in odb mode delivers payloads from buffer stores');
  addOptions(fe, frontendOptions).action(async () => {
    const o = resolveOptions(frontendOptions, fe);
    const logger = createLogger('odb-fe', o.logLevel);
    const keyring = keyringFor(o.mode, o.keyFile);
    const tls = tlsFor(o.tlsCert, o.tlsKey, logger);
    await serve({
      name: 'fe',
      logger,
      drainTimeoutMs: o.drainTimeout,
      listeners: { '--listen': o.listen, '--metrics-listen': o.metricsListen },
      keys: reloadable(o.keyFile, keyring),
      tls,
      start: () =>
        startFrontend({
          listen: o.listen,
          upstream: o.upstream,
          mode: o.mode,
          keyring,
          allowedStores: o.storeAllow,
          retryWithoutOffer: o.retryWithoutOffer,
          fetchTimeoutMs: o.fetchTimeout,
          storeConnections: o.storeConnections,
          storeQueueTimeoutMs: o.storeQueueTimeout,
          sendRate: { timeoutMs: o.sendTimeout, minBytesPerSecond: o.sendMinRate },
          connectionsPerUpstream: o.connections,
          upstreamQueue: upstreamQueue(o),
          limits: listenerLimits(o),
          metricsListen: o.metricsListen,
          tls,
          logger,
        }),
    });
  });
}
