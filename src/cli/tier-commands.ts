/** `odb be`, `odb is`, `odb fe`: option tables and start-up of the tiers. */
import type { Command } from 'commander';
import { OdbError } from '../errors.js';
import { defaultThresholdBytes } from '../http/backend.js';
import { loadKeyring, type Keyring } from '../keys/keyring.js';
import { createLogger, type Logger } from '../log.js';
import { defaultSendMinBytesPerSecond, defaultSendTimeoutMs } from '../net/send-rate.js';
import { defaultStoreConnections, defaultStoreQueueTimeoutMs } from '../rab/client.js';
import { defaultFetchLimits } from '../rab/fetch-limits.js';
import { defaultStoreSendTimeoutMs } from '../rab/server.js';
import { defaultBudgetBytes, defaultTtlMs } from '../rab/store.js';
import { startBackend } from '../tiers/be.js';
import { startFrontend } from '../tiers/fe.js';
import { startIntermediate } from '../tiers/is.js';
import type { RunningTier } from '../tiers/tier.js';
import { addOptions, defineOptions, optionTypes, resolveOptions } from './options.js';

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
} as const;

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
  keyFile,
  mode,
  storeAllow: {
    flag: '--store-allow <host:port>',
    description:
      'store endpoint descriptors may name (none given: any endpoint whose descriptor verifies)',
    schema: optionTypes.endpoints,
    repeatable: true,
    default: [],
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
  return loadKeyring(path);
}

/** Runs a started tier until SIGTERM/SIGINT, logging the `ready` line scripts wait for. */
async function serve(
  name: string,
  logger: Logger,
  start: () => Promise<RunningTier>,
): Promise<void> {
  const tier = await start();
  // Always logged, whatever the level: scripts and tests wait for this line.
  logger.child({}, { level: 'info' }).info({ addresses: tier.addresses }, 'ready');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${name} stopping`);
    setTimeout(() => process.exit(0), 5000).unref();
    tier.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
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
    await serve('be', logger, () =>
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
        storeFetchLimits: {
          maxFetches: o.storeMaxFetches,
          maxFetchesPerPayload: o.storeMaxFetchesPerPayload,
          maxFetchesPerPeer: o.storeMaxFetchesPerPeer,
        },
        storeSendTimeoutMs: o.storeSendTimeout,
        sendRate: { timeoutMs: o.sendTimeout, minBytesPerSecond: o.sendMinRate },
        metricsListen: o.metricsListen,
        logger,
      }),
    );
  });

  const is = program
    .command('is')
    .description('intermediate tier: plain reverse proxy / round-robin balancer');
  addOptions(is, intermediateOptions).action(async () => {
    const o = resolveOptions(intermediateOptions, is);
    const logger = createLogger('odb-is', o.logLevel);
    await serve('is', logger, () =>
      startIntermediate({
        listen: o.listen,
        upstreams: o.upstream,
        connectionsPerUpstream: o.connections,
        sendRate: { timeoutMs: o.sendTimeout, minBytesPerSecond: o.sendMinRate },
        metricsListen: o.metricsListen,
        logger,
      }),
    );
  });

  const fe = program
    .command('fe')
    .description('front end: gateway; in odb mode delivers payloads from buffer stores');
  addOptions(fe, frontendOptions).action(async () => {
    const o = resolveOptions(frontendOptions, fe);
    const logger = createLogger('odb-fe', o.logLevel);
    const keyring = keyringFor(o.mode, o.keyFile);
    await serve('fe', logger, () =>
      startFrontend({
        listen: o.listen,
        upstream: o.upstream,
        mode: o.mode,
        keyring,
        allowedStores: o.storeAllow,
        fetchTimeoutMs: o.fetchTimeout,
        storeConnections: o.storeConnections,
        storeQueueTimeoutMs: o.storeQueueTimeout,
        sendRate: { timeoutMs: o.sendTimeout, minBytesPerSecond: o.sendMinRate },
        connectionsPerUpstream: o.connections,
        metricsListen: o.metricsListen,
        logger,
      }),
    );
  });
}
